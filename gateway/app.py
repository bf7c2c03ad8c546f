"""The composition root: configuration -> cluster -> kernel service -> HTTP server.

:class:`Gateway` is what ``kernelgate serve`` runs (and what the HTTP tests
start in-process)::

    gateway = Gateway(GatewayConfig(), kubeconfig=None)
    await gateway.start()      # gateway.url
    ...
    await gateway.stop()       # nothing of the gateway left running

This is the only module that picks a cluster implementation
(:func:`choose_cluster`):

* ``--kubeconfig PATH`` or ``KUBECONFIG``: a real cluster through
  :mod:`gateway.cluster.kubernetes`;
* inside a pod (``KUBERNETES_SERVICE_HOST`` set): the in-cluster config;
* otherwise the embedded simulated cluster (:class:`EmbeddedCluster`): an
  in-memory store with the gateway's RBAC applied, the gateway acting as the
  ``enterprise-gateway-sa`` service account of ``EG_NAMESPACE``, and a node
  agent running the kernel-py image as this repository's launcher and
  IPython kernel, so that a laptop gets working Python kernels.

Over the cluster: the response listener, the informer of kernel pods (all
namespaces, selector ``app=enterprise-gateway,component=kernel``), the informer
of kernel records (Secrets of ``EG_NAMESPACE`` labelled
``component=kernel-record``: every replica serves every kernel from them), the
provisioner, the duties' lease elector, the kernel service, and the tornado
application.  :class:`Gateway` owns every one of them: it creates and starts
them in that order and stops them in reverse.  The provisioner has nothing to
start; it is handed the started listener and informer, and closed once the
kernel service has stopped (waiting for the clean-ups of the launches the
service's stop cancelled).

What a stop does to kernels depends on the cluster.  The embedded cluster ends
with the gateway's process, so there every kernel is shut down.  On a real
cluster kernels belong to the cluster: a stopping gateway (SIGTERM) finishes
what it was doing within its grace, releases the duties' Lease, and leaves its
kernels to the other replicas and to its successor, who serve them from their
records.  An operator who wants kernels gone deletes them through the API.
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import logging
import os
import socket
from pathlib import Path
from typing import Any, Protocol

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from gateway.cluster.informer import Informer
from gateway.cluster.interface import Cluster
from gateway.cluster.lease import LeaseElector
from gateway.config import GatewayConfig
from gateway.http.context import HttpContext, HttpSettings
from gateway.http.routes import make_application
from gateway.kernels.admissions import Admissions
from gateway.kernels.records import RecordStore
from gateway.kernels.service import KernelService, Replica
from gateway.kernels.specs import KernelSpecs
from gateway.objects import kernel_selector
from gateway.objects.record import RECORD_SELECTOR
from gateway.provisioner import PodProvisioner, ResponseListener

log = logging.getLogger("gateway.app")

NODE_NAME = "kernelgate-node"
CLOSE_TIMEOUT = 10.0
"""Bound on closing the HTTP connections and the cluster connections at shutdown."""


class ClusterConnection(Protocol):
    """The cluster the gateway runs against, as :func:`choose_cluster` opens it."""

    description: str
    cluster: Cluster
    local: bool
    """Kernel pods reach the gateway on 127.0.0.1 (the embedded cluster) rather than over the pod network."""
    ephemeral: bool
    """The cluster ends with this process (the embedded cluster): a stopping gateway shuts its kernels down."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class EmbeddedCluster:
    """The simulated cluster in this process: store, RBAC as the manifests grant it, one node agent.

    ``cluster`` is the gateway's view (its service account); ``admin`` the
    cluster administrator's, for tests and inspection.  Tests may replace
    ``cluster`` (to count calls) before the gateway starts.
    """

    description = "the embedded simulated cluster"
    local = True
    ephemeral = True

    def __init__(self, namespace: str, *, kernel_cluster_role: str = "kernel-controller",
                 work_dir: Path | None = None, agent_options: dict[str, Any] | None = None) -> None:
        from fakes.auth.identity import service_account_user
        from fakes.gateway_rbac import GATEWAY_ACCOUNT
        from fakes.memory import MemoryCluster
        from fakes.state.store import Store

        self.namespace = namespace
        self.kernel_cluster_role = kernel_cluster_role
        self.store = Store()
        self.admin = MemoryCluster(self.store)
        self.cluster: Cluster = MemoryCluster(self.store, service_account_user(namespace, GATEWAY_ACCOUNT))
        self._work_dir = work_dir
        self._agent_options = agent_options or {}
        self.agent: Any = None

    async def start(self) -> None:
        from fakes.auth.identity import node_user
        from fakes.gateway_rbac import install_gateway_rbac
        from fakes.memory import MemoryCluster
        from fakes.node.kernel_images import kernel_image_map
        from fakes.node.kubelet import NodeAgent

        await install_gateway_rbac(self.admin, self.namespace, kernel_cluster_role=self.kernel_cluster_role)
        self.agent = NodeAgent(MemoryCluster(self.store, node_user(NODE_NAME)), node_name=NODE_NAME,
                               images=kernel_image_map(), store=self.store, work_dir=self._work_dir,
                               **self._agent_options)
        await self.agent.start()

    async def stop(self) -> None:
        """Stop the node agent (every pod process terminated) and close the connections."""
        if self.agent is not None:
            await self.agent.stop()
        await self.cluster.close()
        await self.admin.close()


class RealCluster:
    """A Kubernetes cluster reached through the official client (kubeconfig or in-cluster config)."""

    local = False
    ephemeral = False

    def __init__(self, kubeconfig: str | None) -> None:
        self.kubeconfig = kubeconfig
        self.description = f"the cluster of {kubeconfig}" if kubeconfig else "this pod's cluster (in-cluster config)"
        self.cluster: Any = None

    async def start(self) -> None:
        from gateway.cluster.kubernetes import KubernetesCluster

        if self.kubeconfig:
            self.cluster = await asyncio.to_thread(KubernetesCluster.from_kubeconfig, self.kubeconfig)
        else:
            self.cluster = await asyncio.to_thread(KubernetesCluster.in_cluster)

    async def stop(self) -> None:
        if self.cluster is not None:
            await self.cluster.close()


def choose_cluster(config: GatewayConfig, kubeconfig: str | None = None,
                   environ: dict[str, str] | None = None) -> ClusterConnection:
    """``--kubeconfig`` / ``KUBECONFIG``, else in-cluster when in a pod, else the embedded simulated cluster."""
    environ = dict(os.environ) if environ is None else environ
    path = kubeconfig or environ.get("KUBECONFIG")
    if path:
        return RealCluster(path)
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return RealCluster(None)
    return EmbeddedCluster(config.namespace, kernel_cluster_role=config.kernel_cluster_role)


def gateway_user() -> str:
    """The gateway's OS user: ``KERNEL_USERNAME`` of requests that name none (as Enterprise Gateway)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "jovyan"


class Gateway:
    """The whole gateway, started and stopped as one (see the module docstring).

    ``cluster`` defaults to :func:`choose_cluster`; ``response_port`` overrides
    ``EG_RESPONSE_PORT`` (0: any free port).  Unless ``EG_RESPONSE_PORT`` is
    set, a gateway outside a pod listens on any free port (so that several
    gateways on one machine do not fight over 8877) and tells its launchers
    that port; inside a pod it listens on ``EG_RESPONSE_PORT``'s default, 8877.
    """

    def __init__(self, config: GatewayConfig, *, kubeconfig: str | None = None,
                 cluster: ClusterConnection | None = None, response_port: int | None = None) -> None:
        self.config = config
        self.connection = cluster or choose_cluster(config, kubeconfig)
        self._response_port = response_port
        self.pods: Informer | None = None
        self.records: Informer | None = None
        self.lease: LeaseElector | None = None
        self.listener: ResponseListener | None = None
        self.provisioner: PodProvisioner | None = None
        self.service: KernelService | None = None
        self.context: HttpContext | None = None
        self._server: HTTPServer | None = None
        self.port = 0
        self.response_address = ""
        """``host:port`` kernel launchers call back (the response listener's, as launchers reach it)."""
        self._started: list[Any] = []  # what to undo, in start order

    @property
    def url(self) -> str:
        host = self.config.ip if self.config.ip not in ("", "0.0.0.0", "::") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        base = "/" + self.config.base_url.strip("/") if self.config.base_url.strip("/") else ""
        return f"http://{host}:{self.port}{base}"

    async def start(self) -> None:
        """Start every part, in dependency order; on failure what started is stopped again."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        config = self.config
        log.info("starting the gateway on %s", self.connection.description)
        await self.connection.start()
        self._started.append(self.connection)
        cluster = self.connection.cluster

        self.listener = await self._start_listener()
        self.pods = Informer(cluster, "pods", label_selector=kernel_selector())
        await self.pods.start()
        self._started.append(self.pods)
        self.records = Informer(cluster, "secrets", namespace=config.namespace, label_selector=RECORD_SELECTOR)
        await self.records.start()
        self._started.append(self.records)

        address = self.response_address = await self._response_address(self.listener)
        self.provisioner = PodProvisioner(cluster, self.pods, self.listener,
                                          config.provisioner_settings(response_address=address))
        specs = KernelSpecs(**config.kernel_specs_arguments())
        records = RecordStore(cluster, self.records, config.namespace)
        admissions = Admissions(cluster, config.namespace, lambda kernel_id: records.get(kernel_id) is not None,
                                orphan_grace=config.leftover_grace)
        self.lease = LeaseElector(cluster, config.lease_settings(config.namespace))
        await self.lease.start()
        self._started.append(self.lease)
        settings = dataclasses.replace(config.kernel_settings(),
                                       shut_down_kernels_at_stop=bool(getattr(self.connection, "ephemeral", False)))
        self.service = KernelService(self.provisioner, specs, settings,
                                     Replica(config.replica_id, records, admissions, self.lease))
        await self.service.start()
        self._started.append(self.service)

        self.context = HttpContext(
            service=self.service, specs=specs, readiness=self.readiness,
            settings=HttpSettings(base_url=config.base_url, auth_token=config.auth_token,
                                  list_kernels=config.list_kernels, ws_ping_interval=config.ws_ping_interval,
                                  gateway_user=gateway_user()),
        )
        self._server = HTTPServer(make_application(self.context))
        sockets = bind_sockets(config.port, config.ip or None)
        self.port = sockets[0].getsockname()[1]
        for sock in sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._server.add_sockets(sockets)
        log.info("the gateway is serving at %s", self.url)

    async def _start_listener(self) -> ResponseListener:
        config = self.config
        fixed = bool(os.environ.get("EG_RESPONSE_PORT")) or (
            not self.connection.local and bool(os.environ.get("KUBERNETES_SERVICE_HOST")))
        port = self._response_port if self._response_port is not None else (config.response_port if fixed else 0)
        listener = ResponseListener(host="127.0.0.1" if self.connection.local else "0.0.0.0", port=port)
        await listener.start()
        self._started.append(listener)
        return listener

    async def _response_address(self, listener: ResponseListener) -> str:
        """Where launchers call back: 127.0.0.1 on the embedded cluster, else ``EG_RESPONSE_IP`` or this host's IP."""
        if self.connection.local:
            return f"127.0.0.1:{listener.port}"
        ip = self.config.response_ip or await asyncio.to_thread(_own_ip)
        return f"{ip}:{listener.port}"

    def readiness(self) -> dict[str, bool]:
        """``/readyz``: both informers have synced and the response listener accepts connections."""
        return {
            "informer": bool(self.pods is not None and self.pods.has_synced and self.pods in self._started),
            "records": bool(self.records is not None and self.records.has_synced and self.service in self._started),
            "response_listener": bool(self.listener is not None and self.listener.serving),
        }

    async def stop(self) -> None:
        """Stop accepting, close websockets, stop the kernel service (see the module docstring for what becomes of
        kernels), release the duties' Lease, stop the rest (bounded; idempotent)."""
        if self._server is not None:
            self._server.stop()
        if self.context is not None:
            for handler in list(self.context.websockets):
                handler.close(1001, "the gateway is stopping")
        for part in reversed(self._started):
            try:
                await part.stop()
                if part is self.service and self.provisioner is not None:
                    await self.provisioner.close()  # clean-ups of launches cancelled by the service's stop
            except Exception:
                log.exception("stopping %s failed", type(part).__name__)
        self._started.clear()
        if self._server is not None:
            server, self._server = self._server, None
            try:
                await asyncio.wait_for(server.close_all_connections(), CLOSE_TIMEOUT)
            except asyncio.TimeoutError:
                log.warning("HTTP connections still open at shutdown")


def _own_ip() -> str:
    """This host's address on the pod network (``POD_IP`` when the deployment sets it)."""
    return os.environ.get("POD_IP") or socket.gethostbyname(socket.gethostname())
