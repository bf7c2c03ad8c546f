"""The node agent's kubelet API: what a real API server proxies ``pods/log``, ``exec``, ``attach`` and
``portforward`` to.

A real API server reaches a pod's node at ``https://<InternalIP>:<daemonEndpoints.kubeletEndpoint.Port>``
(``pkg/registry/core/pod/strategy.go`` ``LogLocation``, ``ExecLocation``, ``AttachLocation``,
``PortForwardLocation``) with its ``--kubelet-client-certificate``.  :class:`KubeletApi` serves
the paths of ``pkg/kubelet/server/server.go`` ``InstallAuthRequiredHandlers`` that those name:

* ``GET /containerLogs/{namespace}/{pod}/{container}`` (:mod:`fakes.node.containerlogs`);
* ``GET|POST /exec/{namespace}/{pod}[/{uid}]/{container}?command=...`` and ``/attach/...``;
* ``GET|POST /portForward/{namespace}/{pod}[/{uid}]``;

the streams in whichever protocol the caller speaks (:class:`fakes.streams.handler.StreamHandler`:
SPDY, as the API server's stream translator sends, or the websocket protocols it passes through),
and ``/healthz`` to anyone.  As a kubelet with ``--client-ca-file`` and webhook authorization does,
it authenticates callers by a client certificate signed by the cluster CA (no certificate: 401)
and asks the API server whether the caller may ``get`` (``create`` for a POST) ``nodes/proxy``
on this node with a ``SubjectAccessReview`` (``pkg/kubelet/server/auth.go``; allowed answers are
remembered for five minutes, as the kubelet's webhook cache does).  Its errors are plain text, as
the kubelet's are; the API server turns them into the ``Status`` its client sees.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tornado import httpserver, iostream, netutil, web

from fakes.node.containerlogs import container_log, parse_options
from fakes.node.context import API_TIMEOUT
from fakes.node.podworker import PodWorker
from fakes.node.streaming import ExecFailed, NodeStreaming
from fakes.streams.handler import KUBELET_PARAMS, MAX_MESSAGE, StreamHandler
from fakes.streams.remotecommand import ContainerStream, NotStarted
from gateway.aio import OwnedTasks
from gateway.cluster.interface import Cluster, ClusterError, NotFound

log = logging.getLogger(__name__)

AUTHORIZED_TTL = 300.0
"""Seconds an allowed decision is reused (the kubelet's ``authorization-webhook-cache-authorized-ttl``)."""
_NAME = r"([^/]+)"


@dataclass(frozen=True)
class ServingCertificate:
    """The kubelet's TLS files: its serving pair, and the CA whose client certificates it accepts."""

    cert: Path
    key: Path
    client_ca: Path

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.client_ca))
        context.load_cert_chain(str(self.cert), str(self.key))
        context.verify_mode = ssl.CERT_OPTIONAL  # no certificate is anonymous, answered 401 per request
        return context


class KubeletApi:
    """The HTTPS server; ``worker(namespace, name)`` finds a pod this node runs.

    Started by the node agent's process beside a real control plane (``e2e.kube.node``) before
    the agent registers its Node, whose status then names :attr:`port`.
    """

    def __init__(self, cluster: Cluster, node_name: str, streaming: NodeStreaming,
                 worker: Callable[[str, str], PodWorker | None], serving: ServingCertificate) -> None:
        self.cluster = cluster
        self.node_name = node_name
        self.streaming = streaming
        self.worker = worker
        self.serving = serving
        self.port = 0
        self.streams = OwnedTasks(f"kubelet api {node_name}")
        self._allowed: dict[tuple[str, tuple[str, ...], str], float] = {}
        self._server: httpserver.HTTPServer | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0: any free port); return the port."""
        context = await asyncio.to_thread(self.serving.context)
        options = {"api": self}
        app = web.Application([
            (r"/healthz", _Healthz),
            (rf"/containerLogs/{_NAME}/{_NAME}/{_NAME}/?", _ContainerLogs, options),
            (r"/(?P<subresource>exec|attach)/(?P<namespace>[^/]+)/(?P<pod>[^/]+)/(?:(?P<uid>[^/]+)/)?(?P<container>[^/]+)/?",
             _Streams, options),
            (r"/(?P<subresource>portForward)/(?P<namespace>[^/]+)/(?P<pod>[^/]+)(?:/(?P<uid>[^/]+))?/?", _Streams, options),
        ], compress_response=False, websocket_max_message_size=MAX_MESSAGE, log_function=_log_request)
        sockets = netutil.bind_sockets(port, address=host)
        self.port = int(sockets[0].getsockname()[1])
        self._server = httpserver.HTTPServer(app, ssl_options=context)
        self._server.add_sockets(sockets)
        return self.port

    async def stop(self) -> None:
        """Stop listening and end every open stream."""
        if self._server is not None:
            self._server.stop()
            await self.streams.cancel_all()
            await self._server.close_all_connections()
            self._server = None

    async def allowed(self, user: str, groups: tuple[str, ...], verb: str) -> bool:
        """Whether ``user`` may ``verb`` ``nodes/proxy`` on this node (a SubjectAccessReview, cached when allowed)."""
        key = (user, groups, verb)
        if self._allowed.get(key, 0.0) > time.monotonic():
            return True
        review = {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": list(groups), "resourceAttributes": {
                "verb": verb, "version": "v1", "resource": "nodes", "subresource": "proxy", "name": self.node_name}},
        }
        answer = await asyncio.wait_for(self.cluster.create("subjectaccessreviews", review), API_TIMEOUT)
        if (answer.get("status") or {}).get("allowed"):
            self._allowed[key] = time.monotonic() + AUTHORIZED_TTL
            return True
        return False


def _log_request(handler: web.RequestHandler) -> None:
    if handler.get_status() >= 400:
        log.info("%d %s %s", handler.get_status(), handler.request.method, handler.request.path)


def _identity(certificate: dict[str, Any] | None) -> tuple[str, tuple[str, ...]] | None:
    """User and groups of a verified client certificate: its common name and organizations."""
    if not certificate:
        return None
    attributes = [pair for rdn in certificate.get("subject", ()) for pair in rdn]
    names = [value for key, value in attributes if key == "commonName"]
    if not names:
        return None
    return names[0], tuple(value for key, value in attributes if key == "organizationName")


class _Healthz(web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.finish("ok")


class _Authenticated(web.RequestHandler):
    """Authentication and authorization of every kubelet API request, before its handler runs."""

    api: KubeletApi

    def initialize(self, api: KubeletApi) -> None:
        self.api = api

    async def prepare(self) -> None:
        identity = _identity(self.request.get_ssl_certificate())  # type: ignore[arg-type]
        if identity is None:
            self.fail(401, "Unauthorized")
            return
        user, groups = identity
        verb = "create" if self.request.method == "POST" else "get"
        try:
            allowed = await self.api.allowed(user, groups, verb)
        except (ClusterError, asyncio.TimeoutError) as err:
            log.warning("kubelet api: authorizing %s failed: %r", user, err)
            self.fail(500, f"Authorization error (user={user}, verb={verb}, resource=nodes, subresource=proxy)")
            return
        if not allowed:
            self.fail(403, f"Forbidden (user={user}, verb={verb}, resource=nodes, subresource(s)=[proxy])\n")

    def fail(self, status: int, message: str) -> None:
        """Answer with the kubelet's plain-text error, unless the answer has begun."""
        if not self._headers_written and not self._finished:
            self.set_status(status)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(message)


class _ContainerLogs(_Authenticated):
    """A container's log; a followed one is relayed until the container exits or the caller hangs up."""

    _relay: asyncio.Task[bool] | None = None

    async def get(self, namespace: str, pod: str, container: str) -> None:
        query = {k: v[-1].decode(errors="replace") for k, v in self.request.query_arguments.items()}
        try:
            options = parse_options(query)
            chunks = container_log(self.api.streaming, self.api.worker(namespace, pod), namespace, pod,
                                   container, options)
            first = await anext(chunks, None)
        except ClusterError as err:
            self.fail(err.status, err.message)
            return
        self.set_header("Content-Type", "text/plain")
        self._relay = self.api.streams.spawn(self._send(first, chunks), f"log {namespace}/{pod}/{container}")
        await asyncio.wait([self._relay])
        if not self._relay.cancelled() and self._relay.result():
            self.finish()

    async def _send(self, chunk: bytes | None, chunks: AsyncGenerator[bytes, None]) -> bool:
        """Write every chunk; ``False`` when the caller hung up first."""
        try:
            while chunk is not None:
                self.write(chunk)
                await self.flush()
                chunk = await anext(chunks, None)
        except iostream.StreamClosedError:
            return False
        finally:
            await chunks.aclose()
        return True

    def on_connection_close(self) -> None:
        if self._relay is not None:
            self._relay.cancel()


class _Runtime:
    """The node's streams as a kubelet's container runtime serves them: a command that cannot start
    is reported after the upgrade, on the error stream (:class:`~fakes.streams.remotecommand.NotStarted`)."""

    def __init__(self, streaming: NodeStreaming) -> None:
        self.streaming = streaming

    async def exec(self, namespace: str, pod: str, container: str, command: list[str], *,
                   stdin: bool, tty: bool) -> ContainerStream:
        try:
            return await self.streaming.exec(namespace, pod, container, command, stdin=stdin, tty=tty)
        except ExecFailed as err:
            return NotStarted(err.message)

    def attach(self, namespace: str, pod: str, container: str) -> ContainerStream:
        return self.streaming.attach(namespace, pod, container)

    async def port_forward(self, namespace: str, pod: str,
                           port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await self.streaming.port_forward(namespace, pod, port)


class _Streams(StreamHandler, _Authenticated):
    """Exec, attach and port-forward of this node's pods."""

    def initialize(self, api: KubeletApi) -> None:  # type: ignore[override]
        StreamHandler.initialize(self, api.streams)
        self.api = api

    async def get(self, subresource: str, namespace: str, pod: str, uid: str | None = None,  # type: ignore[override]
                  container: str | None = None) -> None:
        await self._serve(subresource, namespace, pod, uid, container)

    async def post(self, subresource: str, namespace: str, pod: str, uid: str | None = None,
                   container: str | None = None) -> None:
        await self._serve(subresource, namespace, pod, uid, container)

    async def _serve(self, subresource: str, namespace: str, pod: str, uid: str | None = None,
                     container: str | None = None) -> None:
        try:
            options = (self.stream_options(container or "", subresource, KUBELET_PARAMS)
                       if subresource != "portForward" else None)
            worker = self.api.worker(namespace, pod)
            if worker is None or (uid and worker.uid != uid):
                raise NotFound("pod does not exist")
            if options is None:
                await self.port_forward(self.api.streaming, namespace, pod, worker.uid, ports_param="port")
            else:
                await self.remote_command(_Runtime(self.api.streaming), namespace, pod, subresource, options)
        except ClusterError as err:
            self.fail(err.status, err.message)
