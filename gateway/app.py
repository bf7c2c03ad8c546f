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
application.  Every cluster call goes through a
:class:`~gateway.cluster.metered.MeteredCluster` (API errors counted), the
kernel service reports into :attr:`Gateway.metrics` and writes Kubernetes
Events through :attr:`Gateway.events` (:mod:`gateway.kernels.telemetry`).  :class:`Gateway` owns every one of them: it creates and starts
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

from gateway.cluster.events import EventRecorder
from gateway.cluster.informer import Informer
from gateway.cluster.interface import Cluster, ClusterError
from gateway.cluster.lease import LeaseElector
from gateway.cluster.metered import MeteredCluster
from gateway.config import GatewayConfig
from gateway.filewatch import FolderWatch
from gateway.http.context import HttpContext, HttpSettings
from gateway.http.health import Check
from gateway.http.routes import make_application
from gateway.kernels.admissions import replica_admissions
from gateway.kernels.kernel import KernelState
from gateway.kernels.records import RecordStore
from gateway.kernels.service import KernelService, Replica
from gateway.kernels.specs import KernelSpecs
from gateway.kernels.telemetry import KernelTelemetry
from gateway.objects import kernel_selector
from gateway.objects.record import RECORD_SELECTOR
from gateway.observability.metrics import GatewayMetrics
from gateway.provisioner import PodProvisioner, ResponseListener
from gateway.provisioner.response import listen_host

log = logging.getLogger("gateway.app")

NODE_NAME = "kernelgate-node"
CLOSE_TIMEOUT = 10.0
"""Bound on closing the HTTP connections and the cluster connections at shutdown."""


class ClusterConnection(Protocol):
    """The cluster the gateway runs against, as :func:`choose_cluster` opens it."""

    description: str
    source: str
    """Why the gateway uses this cluster (``kernelgate serve`` says it at start)."""
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
    source = "no --kubeconfig, no KUBECONFIG and not in a pod; kernels run as local processes"
    local = True
    ephemeral = True

    def __init__(self, namespace: str, *, kernel_cluster_role: str = "kernel-controller",
                 work_dir: Path | None = None, agent_options: dict[str, Any] | None = None) -> None:
        from fakes.auth.identity import service_account_user
        from fakes.gateway_rbac import GATEWAY_ACCOUNT
        from fakes.memory import MemoryCluster
        from fakes.node.kernel_images import kernel_image_map
        from fakes.state.store import Store

        self.namespace = namespace
        self.kernel_cluster_role = kernel_cluster_role
        self.store = Store()
        self.admin = MemoryCluster(self.store)
        self.cluster: Cluster = MemoryCluster(self.store, service_account_user(namespace, GATEWAY_ACCOUNT))
        self._work_dir = work_dir
        self._agent_options = agent_options or {}
        self.images = kernel_image_map()
        """The images the node agent runs: this repository's launcher, with the kernels this machine has."""
        self.agent: Any = None

    async def start(self) -> None:
        from fakes.auth.identity import node_user
        from fakes.gateway_rbac import install_gateway_rbac
        from fakes.memory import MemoryCluster
        from fakes.node.kubelet import NodeAgent

        await install_gateway_rbac(self.admin, self.namespace, kernel_cluster_role=self.kernel_cluster_role)
        self.agent = NodeAgent(MemoryCluster(self.store, node_user(NODE_NAME)), node_name=NODE_NAME,
                               images=self.images, store=self.store, work_dir=self._work_dir,
                               **self._agent_options)
        await self.agent.start()

    def why_not_runnable(self, image: str) -> str:
        """Why a kernel pod of ``image`` can only fail here ("" when it runs): the kernelspecs offered leave those out."""
        from fakes.node.kernel_images import why_not_runnable

        return why_not_runnable(image, self.images)

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

    def __init__(self, kubeconfig: str | None, source: str = "") -> None:
        self.kubeconfig = kubeconfig
        self.description = f"the cluster of {kubeconfig}" if kubeconfig else "this pod's cluster (in-cluster config)"
        self.source = source
        self.cluster: Any = None

    async def start(self) -> None:
        """Read the kubeconfig (or the pod's service account); :class:`ClusterUnusable` when it cannot be read."""
        from gateway.cluster.kubernetes import KubernetesCluster

        try:
            if self.kubeconfig:
                self.cluster = await asyncio.to_thread(KubernetesCluster.from_kubeconfig, self.kubeconfig)
            else:
                self.cluster = await asyncio.to_thread(KubernetesCluster.in_cluster)
        except Exception as error:  # the kubernetes client's ConfigException, a missing file, bad YAML...
            raise ClusterUnusable(f"cannot read the configuration of {self.description}: {_one_line(error)}") from error
        self.description += f" (API server {self.cluster.host})"

    async def stop(self) -> None:
        if self.cluster is not None:
            await self.cluster.close()


def choose_cluster(config: GatewayConfig, kubeconfig: str | None = None,
                   environ: dict[str, str] | None = None) -> ClusterConnection:
    """``--kubeconfig`` / ``KUBECONFIG``, else in-cluster when in a pod, else the embedded simulated cluster."""
    environ = dict(os.environ) if environ is None else environ
    if kubeconfig:
        return RealCluster(kubeconfig, "named by --kubeconfig")
    if environ.get("KUBECONFIG"):
        return RealCluster(environ["KUBECONFIG"], "named by the KUBECONFIG environment variable; "
                           "unset it for the embedded simulated cluster")
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return RealCluster(None, "KUBERNETES_SERVICE_HOST is set: running in a pod, as its service account")
    return EmbeddedCluster(config.namespace, kernel_cluster_role=config.kernel_cluster_role)


class ClusterUnusable(Exception):
    """The gateway cannot start on its cluster: its configuration cannot be read, or its API server cannot be
    reached or refuses the gateway.  Raised by :meth:`Gateway.start`; the message is one line."""


class CannotListen(Exception):
    """A port the gateway must listen on cannot be bound (in use, say); the message names it, in one line."""


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
        self.metrics = GatewayMetrics()
        """This gateway's metrics (a registry of its own), served at ``/metrics``."""
        self.events: EventRecorder | None = None
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
        cluster = MeteredCluster(self.connection.cluster, self.metrics.api_error)
        self.events = EventRecorder(cluster, instance=config.replica_id, on_dropped=self.metrics.events_dropped.inc)
        await self.events.start()
        self._started.append(self.events)

        self.listener = await self._start_listener()
        self.pods = Informer(cluster, "pods", label_selector=kernel_selector(), readiness_grace=config.readiness_grace)
        await self._sync(self.pods)
        self._started.append(self.pods)
        self.records = Informer(cluster, "secrets", namespace=config.namespace, label_selector=RECORD_SELECTOR,
                                readiness_grace=config.readiness_grace)
        await self._sync(self.records)
        self._started.append(self.records)
        self.metrics.watch_informer("pods", self.pods)
        self.metrics.watch_informer("records", self.records)

        address = self.response_address = await self._response_address(self.listener)
        watch = FolderWatch()  # a start reads its kernelspec's files only after they change
        self._started.append(watch)
        self.provisioner = PodProvisioner(cluster, self.pods, self.listener,
                                          config.provisioner_settings(response_address=address), watch=watch)
        specs = KernelSpecs(**config.kernel_specs_arguments(),
                            unrunnable=getattr(self.connection, "why_not_runnable", None), watch=watch)
        hidden = await asyncio.to_thread(specs.not_runnable)
        if hidden:
            log.info("kernelspecs not offered, as %s cannot run them: %s", self.connection.description,
                     "; ".join(f"{name} ({why})" for name, why in hidden.items()))
        records = RecordStore(cluster, self.records, config.namespace)
        settings = dataclasses.replace(config.kernel_settings(),
                                       shut_down_kernels_at_stop=bool(getattr(self.connection, "ephemeral", False)))
        admissions = replica_admissions(cluster, config.namespace, records, settings)
        self.lease = LeaseElector(cluster, config.lease_settings(config.namespace))
        await self.lease.start()
        self._started.append(self.lease)
        self.service = KernelService(self.provisioner, specs, settings,
                                     Replica(config.replica_id, records, admissions, self.lease),
                                     telemetry=KernelTelemetry(self.metrics, self.events,
                                                               gateway_namespace=config.namespace))
        service = self.service
        self.metrics.watch_kernels(lambda: [str(kernel.state) for kernel in service.list()], [state.value for state in KernelState])
        await self.service.start()
        self._started.append(self.service)

        self.context = HttpContext(
            service=self.service, specs=specs, readiness=self.readiness,
            settings=HttpSettings(base_url=config.base_url, auth_token=config.auth_token,
                                  list_kernels=config.list_kernels, ws_ping_interval=config.ws_ping_interval,
                                  gateway_user=gateway_user(), metrics_auth=config.metrics_auth,
                                  buffer_offline_messages=config.buffer_offline_messages),
            metrics=self.metrics,
        )
        websockets, sessions = self.context.websockets, self.context.client_sessions
        self.metrics.watch_websockets(lambda: len(websockets), lambda: (len(sessions.kept()), sessions.kept_bytes))
        self._server = HTTPServer(make_application(self.context))
        try:
            sockets = bind_sockets(config.port, config.ip or None)
        except OSError as error:
            raise CannotListen(f"cannot listen on {_address(config.ip or '*', config.port)} (--ip and --port, or "
                               f"EG_IP and EG_PORT): {error.strerror or error}") from error
        self.port = sockets[0].getsockname()[1]
        for sock in sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._server.add_sockets(sockets)
        log.info("the gateway is serving at %s", self.url)

    async def _sync(self, informer: Informer) -> None:
        """Start ``informer``: its first list is among the gateway's first calls to the API server, so its failure
        means the cluster cannot be used (:class:`ClusterUnusable`)."""
        try:
            await informer.start()
        except ClusterError as error:
            raise ClusterUnusable(f"cannot use {self.connection.description}: {_one_line(error)}") from error

    async def _start_listener(self) -> ResponseListener:
        config = self.config
        fixed = bool(os.environ.get("EG_RESPONSE_PORT")) or (
            not self.connection.local and bool(os.environ.get("KUBERNETES_SERVICE_HOST")))
        port = self._response_port if self._response_port is not None else (config.response_port if fixed else 0)
        listener = ResponseListener(host=listen_host(config.response_ip, local=self.connection.local), port=port)
        try:
            await listener.start()
        except OSError as error:
            raise CannotListen(f"cannot listen for kernel connection info on {_address(listener.host, port)} "
                               f"(EG_RESPONSE_IP, EG_RESPONSE_PORT): {error.strerror or error}") from error
        self._started.append(listener)
        return listener

    async def _response_address(self, listener: ResponseListener) -> str:
        """Where launchers call back: 127.0.0.1 on the embedded cluster, else ``EG_RESPONSE_IP`` or this host's IP."""
        if self.connection.local:
            return f"127.0.0.1:{listener.port}"
        ip = self.config.response_ip or await asyncio.to_thread(_own_ip)
        return f"{ip}:{listener.port}"

    def readiness(self) -> dict[str, Check]:
        """``/readyz``: both informers trust their view of the cluster (``Informer.health``: synced, or failing for
        less than ``EG_READINESS_GRACE_SECS``), and the response listener accepts connections."""
        serving = bool(self.listener is not None and self.listener.serving)
        return {
            "informer": _informer_check(self.pods, self.pods in self._started),
            "records": _informer_check(self.records, self.service in self._started),
            "response_listener": Check(serving, "" if serving else "the response listener does not accept connections"),
        }

    async def stop(self) -> None:
        """Stop accepting, close websockets, stop the kernel service (see the module docstring for what becomes of
        kernels), release the duties' Lease, stop the rest (bounded; idempotent)."""
        if self._server is not None:
            self._server.stop()
        if self.context is not None:
            self.context.client_sessions.close()
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


def _informer_check(informer: Informer | None, started: bool) -> Check:
    if informer is None or not started:
        return Check(False, "the gateway is starting")
    return Check(informer.health.ready, informer.health.reason)


def _own_ip() -> str:
    """This host's address on the pod network (``POD_IP`` when the deployment sets it)."""
    return os.environ.get("POD_IP") or socket.gethostbyname(socket.gethostname())
