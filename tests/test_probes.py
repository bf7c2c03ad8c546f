"""Readiness and liveness probes on the simulated node: a container is ready once its probe passes,
unready once it fails, and restarted when its liveness probe fails.

Real processes (``slow``) under the node agent over the in-memory cluster; the test decides when a
probe passes (a file it creates or removes), and every wait is a watch (tests/podwait.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fakes.node.kubelet import NodeAgent
from fakes.state.store import Store
from tests.kubeletharness import admin_fixture, store_fixture  # noqa: F401  (fixtures: admin, store)
from tests.node import node_agent
from tests.podwait import condition_is, container_running, container_status, wait_for_pod

pytestmark = pytest.mark.slow

NS = "default"


@pytest.fixture
async def agent(store: Store, tmp_path: Path) -> AsyncIterator[NodeAgent]:
    node = node_agent(store, tmp_path / "node")
    await node.start()
    yield node
    await node.stop()


def pod(name: str, command: list[str], *, image: str = "busybox", **container: object) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
        "spec": {"restartPolicy": "Always", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "image": image, "command": command, **container}]},
    }


def running_unready(pod_: dict) -> bool:
    """running, not ready"""
    status = container_status(pod_) or {}
    return container_running()(pod_) and status.get("ready") is False and condition_is("Ready", "False")(pod_)


async def test_an_exec_readiness_probe_decides_when_the_container_is_ready(admin, agent, tmp_path):
    flag = tmp_path / "ready"
    probe = {"exec": {"command": ["test", "-f", str(flag)]}, "periodSeconds": 1, "failureThreshold": 1}
    created = await admin.create("pods", pod("probed", ["sleep", "60"], readinessProbe=probe), namespace=NS)
    rv = created["metadata"]["resourceVersion"]
    await wait_for_pod(admin, NS, "probed", running_unready, timeout=10, resource_version=rv)
    await asyncio.to_thread(flag.write_text, "")
    ready = await wait_for_pod(admin, NS, "probed", condition_is("Ready", "True"), timeout=10)
    assert (container_status(ready) or {})["ready"] is True
    await asyncio.to_thread(flag.unlink)
    await wait_for_pod(admin, NS, "probed", condition_is("Ready", "False", "ContainersNotReady"), timeout=10)
    events = (await admin.list("events", namespace=NS))["items"]
    assert any(e["reason"] == "Unhealthy" and e["message"].startswith("Readiness probe failed") for e in events)


async def test_an_http_readiness_probe_passes_once_the_server_answers(admin, agent):
    server = ["python3", "-m", "http.server", "8080", "--bind", "$(POD_IP)"]
    spec = pod("web", server, image="python:3.12",
               env=[{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
               ports=[{"name": "http", "containerPort": 8080}],
               readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
               livenessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1})
    await admin.create("pods", spec, namespace=NS)
    ready = await wait_for_pod(admin, NS, "web", condition_is("Ready", "True"), timeout=20)
    assert (container_status(ready) or {})["restartCount"] == 0


async def test_a_failing_liveness_probe_restarts_the_container(admin, agent):
    probe = {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1}
    await admin.create("pods", pod("doomed", ["sleep", "60"], livenessProbe=probe), namespace=NS)

    def restarted(pod_: dict) -> bool:
        """restarted by its liveness probe"""
        return int((container_status(pod_) or {}).get("restartCount") or 0) >= 1

    await wait_for_pod(admin, NS, "doomed", restarted, timeout=20)
    events = (await admin.list("events", namespace=NS))["items"]
    assert any(e["reason"] == "Killing" and "failed liveness probe, will be restarted" in e["message"] for e in events)
