"""The node's heartbeat: a Lease in ``kube-node-lease`` renewed as the kubelet renews it.

A real cluster's node-lifecycle controller marks a node ``Ready=Unknown`` (and
taints it) when the node's Lease goes stale, so on a real control plane the node
agent runs a :class:`NodeHeartbeat` (``NodeAgent(lease_renew_seconds=...)``).  The
Lease is named after the node, held by it, lives ``LEASE_SECONDS`` and is owned by
the Node object (deleting the Node deletes it), as the kubelet makes it.  Only the
node's own Lease is touched: the Node authorizer allows nothing else.
"""

from __future__ import annotations

import asyncio
import datetime
import logging

from fakes.node.context import API_TIMEOUT
from gateway.cluster.interface import AlreadyExists, Cluster, ClusterError, NotFound, Obj

log = logging.getLogger(__name__)

NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40
"""The kubelet's default ``leaseDurationSeconds``; it renews every quarter of it."""


def micro_time() -> str:
    """Now, as a Kubernetes ``MicroTime`` (what ``spec.renewTime`` holds)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeHeartbeat:
    """Keeps node ``node_name``'s Lease fresh; :meth:`run` is a task of the node agent, started after registration."""

    def __init__(self, cluster: Cluster, node_name: str, node_uid: str, renew_seconds: float) -> None:
        self.cluster = cluster
        self.node_name = node_name
        self.node_uid = node_uid
        self.renew_seconds = renew_seconds

    def lease(self) -> Obj:
        """The Lease as the kubelet creates it."""
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.node_name,
                "namespace": NAMESPACE,
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": self.node_uid}],
            },
            "spec": {"holderIdentity": self.node_name, "leaseDurationSeconds": LEASE_SECONDS,
                     "renewTime": micro_time()},
        }

    async def renew(self) -> None:
        """Move ``spec.renewTime`` to now, creating the Lease when it is missing."""
        try:
            await asyncio.wait_for(self.cluster.patch(
                "leases", self.node_name, {"spec": {"holderIdentity": self.node_name, "renewTime": micro_time()}},
                namespace=NAMESPACE), timeout=API_TIMEOUT)
        except NotFound:
            try:
                await asyncio.wait_for(self.cluster.create("leases", self.lease(), namespace=NAMESPACE),
                                       timeout=API_TIMEOUT)
            except AlreadyExists:
                pass  # made meanwhile: the next renewal patches it

    async def run(self) -> None:
        """Renew now and then every ``renew_seconds`` until cancelled; a failed renewal is logged and retried
        at the next tick (the lease outlives three missed renewals)."""
        while True:
            try:
                await self.renew()
            except (ClusterError, asyncio.TimeoutError) as err:
                log.warning("%s: node lease not renewed: %s", self.node_name, err)
            await asyncio.sleep(self.renew_seconds)  # the heartbeat's period, not a wait for state
