"""The simulated cluster served over the Kubernetes REST API (HTTPS, bearer tokens).

``ApiServer(store)`` serves one :class:`fakes.state.store.Store` so that the official
``kubernetes`` client and kubectl work against it.  For each request it
authenticates the bearer token (and any ``Impersonate-*`` headers) to a
:class:`~fakes.auth.identity.UserInfo`, opens ``MemoryCluster(store, user)`` — which
authorizes every call with RBAC — and answers through the cluster interface;
a :class:`~gateway.cluster.interface.ClusterError` becomes the ``Status`` body a
real server sends.

Started and stopped by :class:`fakes.serve.SimulatedCluster`; everything runs on
the event loop that owns the store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from typing import Any

from tornado import httpserver, netutil, web

from fakes.apiserver import decoding, discovery, openapi, paths, rest, reviews, streaming, tls, watchstream
from fakes.auth.identity import ADMIN, UserInfo
from fakes.auth.impersonation import impersonate
from fakes.memory import MemoryCluster
from gateway.aio import OwnedTasks
from gateway.cluster.interface import ClusterError, NotFound, ServerError, Unauthorized
from gateway.cluster.status import to_status

log = logging.getLogger(__name__)

NOT_FOUND = "the server could not find the requested resource"
_PUBLIC_PATHS = {"/healthz", "/livez", "/readyz", "/version"}  # open to anyone, as system:public-info-viewer grants


class ApiServer:
    """An HTTPS Kubernetes API server over ``store``.

    ``await start()`` binds ``host:port`` (port 0: any free port) and registers
    ``admin_token`` (generated when not given) for the cluster administrator;
    then :attr:`url`, :attr:`ca_pem` and :attr:`admin_token` say how to reach it.
    ``await stop()`` ends open watches and closes every connection.
    """

    def __init__(self, store: Any, *, host: str = "127.0.0.1", port: int = 0, admin_token: str | None = None) -> None:
        self.store = store
        self.host = host
        self.port = port
        self.admin_token = admin_token or secrets.token_urlsafe(32)
        self.certificate = tls.generate((host, "localhost") if host != "localhost" else (host,))
        store.publish_root_ca(self.certificate.ca_pem)  # what kube-root-ca.crt holds: the CA clients verify us with
        self._http: httpserver.HTTPServer | None = None
        self.watches = watchstream.OpenWatches()
        self.kubelets: dict[str, streaming.Kubelet] = {}
        """Node name -> its streaming server (exec, attach, port-forward, followed logs); set by the composition."""
        self.streams = OwnedTasks("api server streams")

    @property
    def ca_pem(self) -> bytes:
        return self.certificate.ca_pem

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    async def start(self) -> None:
        """Listen; called once, on the loop that owns the store."""
        self.store.tokens.add_static(self.admin_token, ADMIN)
        app = web.Application(
            [(streaming.PATH, streaming.StreamingHandler, {"server": self}), (r"/.*", _Handler, {"server": self})],
            compress_response=False, log_function=_log_request, websocket_max_message_size=streaming.MAX_MESSAGE,
        )
        ssl_context = await asyncio.to_thread(self.certificate.server_context)  # loads the key from files
        self._http = httpserver.HTTPServer(app, ssl_options=ssl_context, idle_connection_timeout=300)
        sockets = netutil.bind_sockets(self.port, self.host)
        self.port = sockets[0].getsockname()[1]
        self._http.add_sockets(sockets)

    async def stop(self) -> None:
        """Stop listening, end open watch streams and close all connections."""
        if self._http is None:
            return
        self._http.stop()
        await self.watches.close_all()
        await self.streams.cancel_all()
        await self._http.close_all_connections()
        self._http = None

    def authenticate(self, authorization: str | None) -> UserInfo:
        """The user behind an ``Authorization: Bearer`` header; :class:`Unauthorized` otherwise
        (the real server's message is just ``Unauthorized``)."""
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                user = self.store.tokens.authenticate(token.strip(), self.store.service_account_exists)
                if user is not None:
                    return user
        raise Unauthorized("Unauthorized")


def _log_request(handler: web.RequestHandler) -> None:
    """Requests are logged at DEBUG, server errors at ERROR (tornado's default logs every request at INFO)."""
    status = handler.get_status()
    level = logging.ERROR if status >= 500 else logging.DEBUG
    request = handler.request
    log.log(level, "%d %s %s %.1fms", status, request.method, request.uri, 1000 * request.request_time())


class _Handler(web.RequestHandler):
    """Every path: public endpoints, discovery, OpenAPI and resources."""

    SUPPORTED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

    def initialize(self, server: ApiServer) -> None:
        self.server = server
        self._stream: watchstream.Stream | None = None
        self._follow: asyncio.Task[None] | None = None

    def compute_etag(self) -> None:
        return None

    async def get(self, *_: str) -> None:
        await self._serve()

    post = put = patch = delete = get

    def on_connection_close(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
        if self._follow is not None:
            self._follow.cancel()

    # ---------------------------------------------------------------- dispatch

    async def _serve(self) -> None:
        path = self.request.path
        try:
            if path in _PUBLIC_PATHS:
                self._public(path)
                return
            user = self.server.authenticate(self.request.headers.get("Authorization"))
            user = impersonate(user, self.request.headers, self.server.store)
            target = paths.parse(path)
            if path in (reviews.SELF_SUBJECT_REVIEW_PATH, reviews.SELF_SUBJECT_RULES_REVIEW_PATH):
                self._self_review(path, user)
            elif isinstance(target, paths.DiscoveryPath):
                self._reply(200, self._discovery(target))
            elif isinstance(target, paths.ResourcePath):
                await self._resource(user, target)
            elif path.startswith("/openapi/"):
                self._openapi(path)
            elif path.startswith(("/api/", "/apis/")):
                raise NotFound(NOT_FOUND)
            else:
                self.set_status(404)
                self.set_header("Content-Type", "text/plain; charset=utf-8")
                self.finish("404 page not found\n")
        except ClusterError as err:
            self._error(err)
        except Exception:
            log.exception("unexpected error serving %s %s", self.request.method, path)
            self._error(ServerError("an error on the server has prevented the request from succeeding"))

    def _public(self, path: str) -> None:
        if path == "/version":
            self._reply(200, discovery.version())
        else:
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish("ok")

    def _discovery(self, target: paths.DiscoveryPath) -> dict[str, Any]:
        if self.request.method != "GET":
            raise rest.not_allowed()
        doc: dict[str, Any] | None
        if target.group is None:
            doc = discovery.core_versions(self.request.host) if target.legacy else discovery.group_list()
        elif target.version is None:
            doc = discovery.group(target.group)
        else:
            doc = discovery.resource_list(target.group, target.version)
        if doc is None:
            raise NotFound(NOT_FOUND)
        return doc

    def _openapi(self, path: str) -> None:
        if path.rstrip("/") == "/openapi/v2" and openapi.V2_PROTOBUF in self.request.headers.get("Accept", ""):
            self._reply(200, openapi.V2_DOCUMENT_PROTOBUF, openapi.V2_PROTOBUF_RESPONSE)
            return
        doc = openapi.document(path)
        if doc is None:
            raise NotFound(NOT_FOUND)
        self._reply(200, doc)

    async def _resource(self, user: UserInfo, target: paths.ResourcePath) -> None:
        query = {k: v[-1].decode(errors="replace") for k, v in self.request.query_arguments.items()}
        cluster = MemoryCluster(self.server.store, user)
        try:
            if self.request.method == "GET" and target.is_collection and query.get("watch") in ("1", "true"):
                await self._watch(cluster, target, query)
                return
            if (self.request.method == "GET" and target.subresource == "log" and target.name
                    and query.get("follow") in ("1", "true")):
                await self._follow_log(cluster, target, query)
                return
            call = rest.Call(
                method=self.request.method or "GET",
                target=target,
                query=query,
                body=self.request.body or b"",
                content_type=self.request.headers.get("Content-Type", ""),
                accept=self.request.headers.get("Accept", ""),
                user_agent=self.request.headers.get("User-Agent", ""),
            )
            if self.request.method == "POST" and target.resource.plural.endswith("subjectaccessreviews"):
                reply = await reviews.review(cluster, user, self.server.store, call)
            else:
                reply = await rest.handle(cluster, call)
            self._reply(reply.status, reply.body, reply.content_type)
        finally:
            await cluster.close()

    def _self_review(self, path: str, user: UserInfo) -> None:
        """``kubectl auth whoami`` and ``auth can-i --list``: answered from the caller's identity and
        RBAC alone, outside the resource registry (which lists what clusters store)."""
        if self.request.method != "POST":
            raise rest.not_allowed()
        body, content_type = self.request.body or b"", self.request.headers.get("Content-Type", "")
        if path == reviews.SELF_SUBJECT_REVIEW_PATH:
            reply = reviews.who_am_i(user, body, content_type)
        else:
            reply = reviews.rules_review(user, self.server.store, body, content_type)
        self._reply(reply.status, reply.body)

    async def _watch(self, cluster: MemoryCluster, target: paths.ResourcePath, query: dict[str, str]) -> None:
        self._stream = watchstream.Stream(self, self.server.watches)
        await self._stream.run(cluster, target, query, self.request.headers.get("Accept", ""))

    async def _follow_log(self, cluster: MemoryCluster, target: paths.ResourcePath, query: dict[str, str]) -> None:
        tail = query.get("tailLines")
        assert target.name is not None
        self._follow = asyncio.ensure_future(streaming.follow_log(
            self, self.server, cluster, target.namespace or "", target.name, query,
            decoding.int_param(tail, "tailLines") if tail else None,
        ))
        try:
            await self._follow
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    # ---------------------------------------------------------------- responses

    def _reply(self, code: int, body: Any, content_type: str = "application/json") -> None:
        self.set_status(code)
        if code == 204:
            self.finish()  # No Content: no body, no type
            return
        self.set_header("Content-Type", content_type)
        self.finish(body if isinstance(body, str | bytes) else json.dumps(body, separators=(",", ":")))

    def _error(self, err: ClusterError) -> None:
        if self._headers_written:
            return
        if err.retry_after_seconds is not None:
            self.set_header("Retry-After", str(err.retry_after_seconds))
        self._reply(err.status, to_status(err))
