"""The node the kubelet tests run pods on, and the pods they give it.

The ``store``, ``admin`` and ``agent`` fixtures (:func:`store_fixture`,
:func:`admin_fixture`, :func:`agent_fixture`) are an in-memory cluster, its
admin client and node-1's agent running real processes as the node's
identity; :func:`pod` writes a one-container pod for namespace :data:`NS`.
The tests in ``tests/test_kubelet_*.py`` import them; they wait for a pod's
state by watching it, with a timeout (tests/podwait.py), and never sleep.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fakes.memory import MemoryCluster
from fakes.node.kubelet import NodeAgent
from fakes.state.store import Store
from gateway.cluster.interface import Cluster
from tests.node import node_agent

NS = "default"


@pytest.fixture(name="store")
def store_fixture() -> Store:
    return Store()


@pytest.fixture(name="admin")
def admin_fixture(store: Store) -> Cluster:
    return MemoryCluster(store)


@pytest.fixture(name="agent")
async def agent_fixture(store: Store, tmp_path: Path) -> AsyncIterator[NodeAgent]:
    node = node_agent(store, tmp_path / "node", api_server_url="https://127.0.0.1:6443")
    await node.start()
    yield node
    await node.stop()


def pod(name: str, command: list[str], *, image: str = "busybox", restart: str = "Never", **spec) -> dict:
    """A pod in :data:`NS` whose one container, ``main``, runs ``command``.

    ``spec`` holds further pod spec fields, and under ``container`` further fields of the container.
    """
    container = {"name": "main", "image": image, "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"restartPolicy": restart, "containers": [container], **spec},
    }
