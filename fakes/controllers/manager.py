"""kube-controller-manager for the simulated cluster: its informers and its controllers, started and stopped as one.

Started by :class:`fakes.serve.SimulatedCluster` (and tests) with two ways to reach the cluster,
as the real manager runs with ``--use-service-account-credentials``:

* ``cluster``: the manager's own user, ``system:kube-controller-manager``, which may list and
  watch everything (the shared informers) and create service accounts in ``kube-system``;
* ``connect_as(namespace, name, uid)``: a client acting as a service account.  Each controller
  gets its own account (``deployment-controller``, ...), created here when missing, and writes
  through it, so each is held to its ``system:controller:<name>`` role.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fakes.controllers.controller import API_TIMEOUT, Controller
from fakes.controllers.deployment import DeploymentController
from fakes.controllers.endpoints import EndpointsController, EndpointSliceController
from fakes.controllers.informers import SharedInformers
from fakes.controllers.replicaset import ReplicaSetController
from gateway.aio import OwnedTasks
from gateway.cluster.interface import AlreadyExists, Cluster

log = logging.getLogger(__name__)

CONTROLLERS_NAMESPACE = "kube-system"
WATCHED = ("deployments", "replicasets", "pods", "services", "endpoints", "endpointslices")
"""The kinds the controllers' informers cache."""
CONTROLLER_TYPES: tuple[type[Controller], ...] = (
    DeploymentController, ReplicaSetController, EndpointsController, EndpointSliceController,
)

ConnectAs = Callable[[str, str, str], Cluster]
"""``connect_as(namespace, name, uid)``: a client acting as that service account."""


class ControllerManager:
    """The controllers of :data:`CONTROLLER_TYPES` over ``cluster`` (see the module docstring)."""

    def __init__(self, cluster: Cluster, connect_as: ConnectAs) -> None:
        self.cluster = cluster
        self._connect_as = connect_as
        self.informers = SharedInformers(cluster, WATCHED)
        self.controllers: list[Controller] = []
        self._clients: list[Cluster] = []
        self._tasks = OwnedTasks("controller manager")

    async def start(self) -> None:
        """Open each controller's client, fill the caches, start the workers; returns once all run."""
        for kind in CONTROLLER_TYPES:
            client = await self._client_for(kind.name)
            controller = kind(self.informers, client)
            controller.register()
            self.controllers.append(controller)
        await self.informers.start()
        for controller in self.controllers:
            self._tasks.spawn(controller.run(), controller.name)
        log.info("controller manager running: %s", ", ".join(c.name for c in self.controllers))

    async def stop(self) -> None:
        """Stop the workers (a sync in progress is cancelled), the informers, and close the clients."""
        for controller in self.controllers:
            controller.shut_down()
        await self._tasks.cancel_all()
        await self.informers.stop()
        for client in self._clients:
            await client.close()
        self._clients.clear()

    async def __aenter__(self) -> ControllerManager:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _client_for(self, account: str) -> Cluster:
        """The service account ``kube-system/<account>`` (created when missing) and a client acting as it."""
        body = {"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": account, "namespace": CONTROLLERS_NAMESPACE}}
        try:
            sa = await asyncio.wait_for(
                self.cluster.create("serviceaccounts", body, namespace=CONTROLLERS_NAMESPACE), API_TIMEOUT)
        except AlreadyExists:
            sa = await asyncio.wait_for(
                self.cluster.get("serviceaccounts", account, namespace=CONTROLLERS_NAMESPACE), API_TIMEOUT)
        client = self._connect_as(CONTROLLERS_NAMESPACE, account, sa["metadata"].get("uid", ""))
        self._clients.append(client)
        return client
