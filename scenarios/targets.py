"""Where the scenarios find a gateway: one :class:`Endpoint` per gateway, whatever runs it.

A target is a cluster plus a way to get a gateway of a given
:class:`~scenarios.variants.Variant` on it:

* ``memory``: :class:`MemoryTarget` starts the gateway in-process on the
  embedded in-memory simulated cluster (``gateway.app.EmbeddedCluster``: the
  manifests' RBAC, the gateway acting as ``enterprise-gateway-sa``, a node
  agent running the kernel image as this repository's bootstrap script); the
  observer is the administrator's view of the same store.
* ``apiserver``: :class:`ApiServerTarget` runs the simulated cluster behind
  its HTTPS API server, applies the manifests with kubectl (``e2e.deploy``),
  asks the TokenRequest API for a token of ``enterprise-gateway-sa`` and
  starts the gateway in-process with the real adapter authenticated by it;
  the observer is the real adapter as the administrator.
* ``replicas``: :class:`ReplicasTarget` is the ``apiserver`` cluster with each
  gateway run as operators run several: two ``kernelgate serve --kubeconfig``
  processes holding only the service account's token, behind a round-robin
  front that sends each connection to the next replica
  (``tests/replicaharness.py``, ``tests/front.py``); the scenarios' client
  talks to the front, so successive requests and websockets of one scenario
  reach different replicas.
* ``kube``: :class:`KubeTarget` is the real control plane built from Kubernetes' Go
  modules (``e2e.kube``, the session's ``kube_cluster``; the node agent is its kubelet)
  with the manifests applied by kubectl, and the gateway in-process as on ``apiserver``,
  with a TokenRequest token of ``enterprise-gateway-sa``;
* ``kind``: :class:`KindTarget` reads the gateways ``e2e/`` deployed on a kind
  cluster (their port-forwarded URLs and token) from the JSON file named by
  ``KERNELGATE_KIND_TARGET``; the observer is the real adapter with the kind
  kubeconfig.

Scenario files see only the :class:`Endpoint`: the gateway's URL and token,
and the observer (a :class:`~gateway.cluster.interface.Cluster`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.cluster.interface import Cluster

from .variants import GATEWAY_NAMESPACE, Variant

KIND_TARGET_ENV = "KERNELGATE_KIND_TARGET"
"""Environment variable naming the JSON file ``e2e/`` writes for the kind target."""
GATEWAY_ACCOUNT = "enterprise-gateway-sa"
SIMULATED_WAIT = 60.0
"""Bound on one wait (a kernel start, a pod's deletion) on a simulated cluster, on a loaded machine."""
KIND_WAIT = 180.0
"""The same on kind, where namespaces take a while to finalize."""
KUBE_WAIT = 120.0
"""The same on the real control plane: its namespace controller finalizes deleted namespaces in seconds."""
_AGENT_OPTIONS: dict[str, Any] = {"shutdown_grace_seconds": 1}
"""The simulated node agent stops a deleted pod's processes after at most a second."""


@dataclass(frozen=True)
class Endpoint:
    """One running gateway as a client and an administrator see it."""

    target: str
    variant: str
    url: str
    token: str
    observer: Cluster
    gateway_namespace: str
    wait: float
    """Bound, in seconds, on each wait of a scenario."""


class MemoryTarget:
    """Gateways on the embedded in-memory cluster, one cluster per gateway."""

    name = "memory"

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir

    @contextlib.asynccontextmanager
    async def gateway(self, variant: Variant) -> AsyncIterator[Endpoint]:
        from fakes.node.context import RestartBackoff
        from gateway.app import EmbeddedCluster, Gateway

        config = _config(variant)
        embedded = EmbeddedCluster(config.namespace, work_dir=self.work_dir / f"node-{uuid.uuid4().hex[:8]}",
                                   agent_options=_AGENT_OPTIONS | {"backoff": RestartBackoff(initial=0.2, maximum=0.8)})
        gateway = Gateway(config, cluster=embedded, response_port=0)
        await gateway.start()
        try:
            yield Endpoint(self.name, variant.name, gateway.url, config.auth_token, embedded.admin,
                           config.namespace, SIMULATED_WAIT)
        finally:
            await gateway.stop()


class ApiServerTarget:
    """The simulated cluster's API server with the manifests applied; gateways in-process as their account."""

    name = "apiserver"

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self._stack = contextlib.AsyncExitStack()
        self.observer: Cluster | None = None
        self._kubeconfig: Path | None = None
        self._context = ""

    async def start(self) -> None:
        from e2e.deploy import Kubectl, apply, gateway_objects
        from fakes.apiserver.kubeconfig import context_for
        from fakes.auth.identity import node_user
        from fakes.memory import MemoryCluster
        from fakes.node.context import RestartBackoff
        from fakes.node.kernel_images import kernel_image_map
        from fakes.node.kubelet import NodeAgent
        from fakes.serve import SimulatedCluster
        from gateway.cluster.kubernetes import KubernetesCluster

        from .variants import DEFAULT

        cluster = await self._stack.enter_async_context(
            SimulatedCluster(state_dir=self.work_dir / "state", node_agent=False))
        kubectl = Kubectl(cluster.kubeconfig_path, cache_dir=self.work_dir / "kubectl-cache")
        # The manifests' namespace, account and RBAC (their Deployment is stored but nothing runs it here).
        await asyncio.to_thread(apply, kubectl, gateway_objects([DEFAULT], auth_token=secrets.token_hex(8)))
        self.observer = await asyncio.to_thread(KubernetesCluster.from_kubeconfig, str(cluster.kubeconfig_path))
        self._stack.push_async_callback(self.observer.close)
        token = await self.observer.create_token(GATEWAY_ACCOUNT, GATEWAY_NAMESPACE)
        self._kubeconfig = await asyncio.to_thread(cluster.write_kubeconfig, None, gateway=token)
        self._context = context_for("gateway")
        agent = NodeAgent(MemoryCluster(cluster.store, node_user("node-1")), node_name="node-1",
                          images=kernel_image_map(), store=cluster.store, work_dir=self.work_dir / "node",
                          api_server_url=cluster.url, backoff=RestartBackoff(initial=0.2, maximum=0.8), **_AGENT_OPTIONS)
        await agent.start()
        self._stack.push_async_callback(agent.stop)

    async def stop(self) -> None:
        await self._stack.aclose()

    @contextlib.asynccontextmanager
    async def gateway(self, variant: Variant) -> AsyncIterator[Endpoint]:
        from gateway.app import Gateway

        assert self.observer is not None and self._kubeconfig is not None, "start() the target first"
        config = _config(variant)
        gateway = Gateway(config, cluster=AdapterConnection(self._kubeconfig, self._context), response_port=0)
        await gateway.start()
        try:
            yield Endpoint(self.name, variant.name, gateway.url, config.auth_token, self.observer,
                           config.namespace, SIMULATED_WAIT)
        finally:
            await gateway.stop()


class ReplicasTarget(ApiServerTarget):
    """The ``apiserver`` cluster; each gateway two ``kernelgate serve`` processes behind a round-robin front."""

    name = "replicas"
    REPLICAS = 2

    def __init__(self, work_dir: Path) -> None:
        super().__init__(work_dir)
        self._gateway_kubeconfig = work_dir / "gateway.kubeconfig"

    async def start(self) -> None:
        from tests.replicaharness import gateway_kubeconfig

        await super().start()
        assert self._kubeconfig is not None
        await asyncio.to_thread(gateway_kubeconfig, self._kubeconfig, self._context, self._gateway_kubeconfig)

    @contextlib.asynccontextmanager
    async def gateway(self, variant: Variant) -> AsyncIterator[Endpoint]:
        from tests.replicaharness import replica_group

        assert self.observer is not None, "start() the target first"
        directory = self.work_dir / f"replicas-{variant.name}-{uuid.uuid4().hex[:8]}"
        await asyncio.to_thread(directory.mkdir)
        async with replica_group(self._gateway_kubeconfig, directory, count=self.REPLICAS,
                                 env={**variant.env, "EG_KERNEL_LAUNCH_TIMEOUT": str(SIMULATED_WAIT)}) as group:
            yield Endpoint(self.name, variant.name, group.url, group.token, self.observer, GATEWAY_NAMESPACE,
                           SIMULATED_WAIT)


class KubeTarget:
    """The real control plane (``e2e.kube``) with the manifests applied by kubectl; gateways in-process as
    ``enterprise-gateway-sa``.

    ``plane`` is the session's ``kube_cluster``.  The manifests' Deployment is applied with no
    replicas: on this cluster its pods would run (the node agent runs the gateway's image), and a
    deployed gateway would share the scenarios' kernels with the gateway under test.
    """

    name = "kube"

    def __init__(self, work_dir: Path, plane: Any) -> None:
        self.work_dir = work_dir
        self.plane = plane
        self.observer: Cluster | None = None
        self._kubeconfig: Path | None = None

    async def start(self) -> None:
        from e2e.deploy import Kubectl, apply, gateway_objects
        from gateway.cluster.kubernetes import KubernetesCluster

        from .variants import DEFAULT

        kubectl = Kubectl(self.plane.admin_kubeconfig)
        objects = gateway_objects([DEFAULT], auth_token=secrets.token_hex(8))
        for obj in objects:
            if obj["kind"] == "Deployment":
                obj["spec"]["replicas"] = 0
        await asyncio.to_thread(apply, kubectl, objects)
        self.observer = await asyncio.to_thread(KubernetesCluster.from_kubeconfig, str(self.plane.admin_kubeconfig))
        token = await self.observer.create_token(GATEWAY_ACCOUNT, GATEWAY_NAMESPACE, expiration_seconds=24 * 3600)
        self._kubeconfig = await asyncio.to_thread(self.plane.token_kubeconfig, "scenario-gateway", token)

    async def stop(self) -> None:
        if self.observer is not None:
            await self.observer.close()

    @contextlib.asynccontextmanager
    async def gateway(self, variant: Variant) -> AsyncIterator[Endpoint]:
        from gateway.app import Gateway

        assert self.observer is not None and self._kubeconfig is not None, "start() the target first"
        config = _config(variant, KUBE_WAIT)
        connection = AdapterConnection(self._kubeconfig, "kernelgate")
        connection.description = f"the real control plane as {GATEWAY_ACCOUNT}"
        gateway = Gateway(config, cluster=connection, response_port=0)
        await gateway.start()
        try:
            yield Endpoint(self.name, variant.name, gateway.url, config.auth_token, self.observer,
                           config.namespace, KUBE_WAIT)
        finally:
            await gateway.stop()


class AdapterConnection:
    """The gateway's cluster connection for the ``apiserver`` target: the real adapter, as its service account.

    Kernel pods run on this machine (the simulated node agent), so they reach
    the gateway's response listener on 127.0.0.1, as on the embedded cluster.
    The cluster outlives each gateway of the session, as a real one does: a
    stopping gateway leaves its kernels to it.
    """

    local = True
    ephemeral = False

    def __init__(self, kubeconfig: Path, context: str) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.description = f"the simulated API server as {GATEWAY_ACCOUNT}"
        self.source = f"the kubeconfig {kubeconfig}"
        self.cluster: Any = None

    async def start(self) -> None:
        from gateway.cluster.kubernetes import KubernetesCluster

        self.cluster = await asyncio.to_thread(KubernetesCluster.from_kubeconfig, str(self.kubeconfig), self.context)

    async def stop(self) -> None:
        if self.cluster is not None:
            await self.cluster.close()


class KindTarget:
    """Gateways ``e2e/`` deployed on kind, described by the file named by ``KERNELGATE_KIND_TARGET``.

    The file holds ``{"kubeconfig": path, "gateways": {variant: {"url": ..., "token": ...}}}``.
    """

    name = "kind"

    def __init__(self) -> None:
        path = os.environ.get(KIND_TARGET_ENV)
        if not path:
            raise RuntimeError(f"--cluster=kind needs {KIND_TARGET_ENV}: run the kind target through e2e/ "
                               "(tox -e e2e), which deploys the gateway and sets it")
        self.description = json.loads(Path(path).read_text(encoding="utf-8"))
        self.observer: Cluster | None = None

    async def start(self) -> None:
        from gateway.cluster.kubernetes import KubernetesCluster

        self.observer = await asyncio.to_thread(KubernetesCluster.from_kubeconfig, self.description["kubeconfig"])

    async def stop(self) -> None:
        if self.observer is not None:
            await self.observer.close()

    @contextlib.asynccontextmanager
    async def gateway(self, variant: Variant) -> AsyncIterator[Endpoint]:
        assert self.observer is not None, "start() the target first"
        found = self.description["gateways"].get(variant.name)
        assert found, f"e2e deployed no {variant.name} gateway"
        yield Endpoint(self.name, variant.name, found["url"], found["token"], self.observer, GATEWAY_NAMESPACE,
                       KIND_WAIT)



def _config(variant: Variant, wait: float = SIMULATED_WAIT) -> Any:
    """The settings of an in-process gateway of ``variant``: the manifests' namespace, any free port, a token."""
    from gateway.config import GatewayConfig

    return GatewayConfig(ip="127.0.0.1", port=0, namespace=GATEWAY_NAMESPACE, auth_token=secrets.token_hex(16),
                         kernel_launch_timeout=wait, **variant.traits)


def work_dir() -> Path:
    """A fresh directory for a target's state (node agent work dirs, kubeconfigs)."""
    return Path(tempfile.mkdtemp(prefix="kernelgate-scenarios-"))
