"""The node agent as the kubelet of a cluster with its own scheduler (the ``kube`` target's set-up).

With ``schedule=False`` the agent binds nothing and follows only the pods bound
to its node; with ``lease_renew_seconds`` it keeps its Lease in ``kube-node-lease``
fresh, owned by its Node, so a node-lifecycle controller sees it alive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fakes.node.kubelet import NodeAgent
from fakes.state.store import Store
from gateway.cluster.interface import Cluster
from tests.kubeletharness import NS, admin_fixture, pod, store_fixture  # noqa: F401 (fixtures)
from tests.node import node_agent
from tests.podwait import phase_is, wait_for_pod

WAIT_SECONDS = 10.0


@pytest.fixture(name="kubelet")
async def kubelet_fixture(store: Store, tmp_path: Path) -> AsyncIterator[NodeAgent]:
    agent = node_agent(store, tmp_path / "node", schedule=False, lease_renew_seconds=0.05)
    await agent.start()
    yield agent
    await agent.stop()


async def test_runs_what_the_scheduler_binds_and_binds_nothing_itself(kubelet: NodeAgent, admin: Cluster) -> None:
    await admin.create("pods", pod("unbound", ["sleep", "30"]), namespace=NS)
    await admin.create("pods", pod("bound", ["sh", "-c", "exit 0"]), namespace=NS)
    await admin.bind_pod("bound", NS, "node-1")

    done = await wait_for_pod(admin, NS, "bound", phase_is("Succeeded", "Failed"))

    assert done["status"]["phase"] == "Succeeded"
    # The agent has seen the unbound pod (created first) and left it to the scheduler.
    unbound = await admin.get("pods", "unbound", namespace=NS)
    assert "nodeName" not in unbound["spec"]
    assert not (unbound.get("status") or {}).get("conditions")


async def test_the_node_lease_is_held_owned_and_renewed(kubelet: NodeAgent, admin: Cluster) -> None:
    node = await admin.get("nodes", "node-1")
    listed = await admin.list("leases", namespace="kube-node-lease")
    [lease] = [item for item in listed["items"] if item["metadata"]["name"] == "node-1"]
    assert lease["spec"]["holderIdentity"] == "node-1"
    assert lease["spec"]["leaseDurationSeconds"] == 40
    [owner] = lease["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Node", "node-1", node["metadata"]["uid"])

    stream = admin.watch("leases", namespace="kube-node-lease", field_selector="metadata.name=node-1",
                         resource_version=listed["metadata"]["resourceVersion"])
    try:
        renewed = await asyncio.wait_for(anext(aiter(stream)), WAIT_SECONDS)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert renewed.type == "MODIFIED"
    assert renewed.object["spec"]["renewTime"] > lease["spec"]["renewTime"]
