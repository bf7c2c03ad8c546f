"""``pods/exec``, ``pods/attach``, ``pods/portforward`` and ``pods/log?follow=true``: streams to the pod's node.

A real API server authorizes these requests, finds the pod's node, and proxies the upgraded
connection to that node's kubelet (``pkg/registry/core/pod/rest/subresources.go``); since 1.30 it
also translates: websocket exec/attach (``v5.channel.k8s.io``) to the kubelet's SPDY, and
websocket-tunnelled SPDY port-forward to plain SPDY.  Here the node's streaming server
(``fakes.node.streaming``, a :class:`Kubelet`) is reached through :attr:`ApiServer.kubelets`,
wired by the cluster's composition (``fakes.serve``), and this module speaks the client's protocol:

* websocket exec and attach, ``channel.k8s.io`` v1 to v5, binary or base64 (``fakes.apiserver.channels``);
* SPDY/3.1 exec and attach (``X-Stream-Protocol-Version`` v1 to v5), what kubectl falls back to
  when a websocket upgrade is refused, and what kubectl before 1.30 speaks;
* port-forward as SPDY (``portforward.k8s.io``), upgraded directly (kubectl before 1.31, and the
  fallback) or tunnelled in a websocket (``SPDY/3.1+portforward.k8s.io``, kubectl from 1.31), and
  as websocket channels (``v4.channel.k8s.io`` with ``?ports=``, as the Python client speaks it).

Authorization is the real server's: the request's verb (``get`` for a websocket's GET, ``create``
for SPDY's POST) on the subresource, and for a GET upgrade ``create`` too, as servers with
``AuthorizePodWebsocketUpgradeCreatePermission`` (beta from 1.35) require.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from tornado import iostream, web, websocket

from fakes.apiserver import channels, portforward, remotecommand, spdy
from fakes.apiserver.remotecommand import ContainerStream, Options
from fakes.auth.impersonation import impersonate
from fakes.memory import MemoryCluster
from gateway.aio import cancel_and_wait, shielded
from gateway.cluster.interface import BadRequest, ClusterError, Forbidden, Obj, ServerError
from gateway.cluster.resources import RESOURCES
from gateway.cluster.status import to_status

if TYPE_CHECKING:
    from fakes.apiserver.server import ApiServer

PATH = r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/(exec|attach|portforward)/?"
"""The streaming subresources, routed to :class:`StreamingHandler` ahead of every other path."""
UPGRADE_REQUIRED = "Upgrade request required"
MAX_MESSAGE = 16 * 1024 * 1024


class Kubelet(Protocol):
    """What the API server needs from a node to stream to its pods (``fakes.node.streaming.NodeStreaming``)."""

    async def exec(self, namespace: str, pod: str, container: str, command: list[str], *,
                   stdin: bool, tty: bool) -> ContainerStream: ...

    def attach(self, namespace: str, pod: str, container: str) -> ContainerStream: ...

    async def port_forward(self, namespace: str, pod: str,
                           port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...

    def follow_log(self, namespace: str, pod: str, container: str, tail_lines: int | None) -> AsyncIterator[bytes]: ...


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true")


def _container(pod: Obj, wanted: str | None) -> str:
    """The container a request names, or the pod's only one (``pod/strategy.go`` ``validateContainer``)."""
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    names = [c.get("name") for c in spec.get("containers") or []]
    others = [c.get("name") for c in (spec.get("initContainers") or []) + (spec.get("ephemeralContainers") or [])]
    if not wanted:
        if len(names) != 1:
            raise BadRequest(f"a container name must be specified for pod {name}, choose one of: "
                             f"[{' '.join(str(n) for n in names)}]")
        return str(names[0])
    if wanted not in names and wanted not in others:
        raise BadRequest(f"container {wanted} is not valid for pod {name}")
    return wanted


def _node(server: ApiServer, pod: Obj) -> Kubelet:
    name = pod["metadata"]["name"]
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise BadRequest(f"pod {name} does not have a host assigned")
    kubelet = server.kubelets.get(node)
    if kubelet is None:
        raise ServerError(f'error dialing backend: dial tcp {node}:10250: no node agent serves node "{node}"')
    return kubelet


class StreamingHandler(websocket.WebSocketHandler):
    """One exec, attach or port-forward request: authorized, then upgraded to the protocol the client speaks."""

    def initialize(self, server: ApiServer) -> None:
        self.server = server
        self._subprotocol: str | None = None
        self._start: Callable[[], Coroutine[Any, Any, None]] | None = None
        self._on_message: Callable[[bytes | str], None] = lambda _: None
        self._on_close: Callable[[], None] = lambda: None
        self._run: asyncio.Task[None] | None = None

    def check_origin(self, origin: str) -> bool:
        return True  # API clients authenticate with bearer tokens, never with a browser's cookies

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return self._subprotocol or None

    def get_compression_options(self) -> None:
        return None

    async def get(self, namespace: str, name: str, subresource: str) -> None:
        await self._serve(namespace, name, subresource)

    async def post(self, namespace: str, name: str, subresource: str) -> None:
        await self._serve(namespace, name, subresource)

    # ---------------------------------------------------------------- before the upgrade

    async def _serve(self, namespace: str, name: str, subresource: str) -> None:
        try:
            user = self.server.authenticate(self.request.headers.get("Authorization"))
            user = impersonate(user, self.request.headers, self.server.store)
            upgrade = self.request.headers.get("Upgrade", "").lower()
            verb = "get" if self.request.method == "GET" else "create"
            cluster = MemoryCluster(self.server.store, user)
            await cluster.authorize(verb, "pods", name, namespace=namespace, subresource=subresource)
            if verb == "get" and upgrade:
                await cluster.authorize("create", "pods", name, namespace=namespace, subresource=subresource)
            pod = self.server.store.get(RESOURCES["pods"], namespace, name)
            if upgrade not in ("websocket", spdy.UPGRADE.lower()):
                raise BadRequest(UPGRADE_REQUIRED)
            kubelet = _node(self.server, pod)
            if subresource == "portforward":
                await self._port_forward(kubelet, pod, upgrade == "websocket")
            else:
                await self._remote_command(kubelet, pod, subresource, upgrade == "websocket")
        except ClusterError as err:
            if not self._headers_written and not self._finished:
                self.set_status(err.status)
                self.set_header("Content-Type", "application/json")
                self.finish(to_status(err))

    def _options(self, pod: Obj, subresource: str) -> Options:
        query = {k: v[-1].decode(errors="replace") for k, v in self.request.query_arguments.items()}
        options = Options(
            container=_container(pod, query.get("container")),
            command=tuple(self.get_query_arguments("command")) if subresource == "exec" else (),
            stdin=_flag(query.get("stdin")), stdout=_flag(query.get("stdout")), stderr=_flag(query.get("stderr")),
            tty=_flag(query.get("tty")),
        )
        if not (options.stdin or options.stdout or options.stderr):
            raise BadRequest("you must specify at least one of stdin, stdout, or stderr")
        if subresource == "exec" and not options.command:
            raise BadRequest("you must specify at least 1 command")
        return options

    async def _remote_command(self, kubelet: Kubelet, pod: Obj, subresource: str, over_websocket: bool) -> None:
        options = self._options(pod, subresource)
        meta = pod["metadata"]
        if over_websocket:
            protocol = channels.negotiate(channels.offered(self.request.headers.get("Sec-WebSocket-Protocol")),
                                          channels.REMOTE_COMMAND)
            if protocol is None:
                raise BadRequest("requested protocol(s) are not supported")
        else:
            version = self._spdy_version(remotecommand.SPDY_PROTOCOLS)
        session = await self._session(kubelet, meta["namespace"], meta["name"], subresource, options)
        if not over_websocket:
            await self._over_spdy(version, lambda connection: remotecommand.serve_spdy(connection, session, options, version),
                                  session.close)
            return
        assert protocol is not None
        command = remotecommand.RemoteCommand(
            session, options, as_status=protocol.status_errors,
            output=lambda fd, data: self._send(protocol.encode(fd, data)),
        )

        def received(message: bytes | str) -> None:
            decoded = protocol.decode(message)
            if decoded is None:
                return
            channel, data = decoded
            if channel == channels.STDIN and data:
                command.stdin(data)
            elif channel == channels.RESIZE and protocol.resizes:
                command.resize(data)
            elif channel == channels.CLOSE and protocol.closes and data[:1] == bytes([channels.STDIN]):
                command.stdin(b"")

        async def run() -> None:
            # The kubelet's first message, on the lowest channel it writes, says the streams are ready.
            await self._send(protocol.encode(channels.STDOUT if options.stdout else channels.ERROR, b""))
            message = await command.run()
            if message:
                await self._send(protocol.encode(channels.ERROR, message))

        await self._over_websocket(protocol.name, run, received, lambda: command.stdin(b""), session.close)

    async def _session(self, kubelet: Kubelet, namespace: str, pod: str, subresource: str,
                       options: Options) -> ContainerStream:
        if subresource == "exec":
            return await kubelet.exec(namespace, pod, options.container, list(options.command),
                                      stdin=options.stdin, tty=options.tty)
        return kubelet.attach(namespace, pod, options.container)

    async def _port_forward(self, kubelet: Kubelet, pod: Obj, over_websocket: bool) -> None:
        meta = pod["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta.get("uid", "")

        async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await kubelet.port_forward(namespace, name, port)

        async def nothing() -> None:
            return None

        offers = channels.offered(self.request.headers.get("Sec-WebSocket-Protocol"))
        tunnel = portforward.TUNNEL_PREFIX + portforward.PROTOCOL
        if not over_websocket:
            version = self._spdy_version([portforward.PROTOCOL])
            await self._over_spdy(version, lambda connection: portforward.serve_spdy(connection, dial, name, uid), nothing)
        elif tunnel in offers:
            connection = spdy.Session(lambda frame: self._send(frame))

            async def tunnelled() -> None:
                try:
                    await portforward.serve_spdy(connection, dial, name, uid)
                finally:
                    await connection.close()

            await self._over_websocket(tunnel, tunnelled, lambda m: connection.feed(_as_bytes(m)),
                                       connection.connection_lost, connection.abort)
        else:
            protocol = channels.negotiate(offers, channels.PORT_FORWARD)
            if protocol is None:
                raise BadRequest("requested protocol(s) are not supported")
            ports = self._ports()
            forwarder = portforward.ChannelForwarder(ports, dial, name, uid,
                                                     lambda channel, data: self._send(protocol.encode(channel, data)))

            def received(message: bytes | str) -> None:
                decoded = protocol.decode(message)
                if decoded is not None:
                    forwarder.received(*decoded)

            await self._over_websocket(protocol.name, forwarder.run, received, forwarder.closed, nothing)

    def _ports(self) -> list[int]:
        """``?ports=80,8080`` (``portforward/websocket.go`` ``NewV4Options``)."""
        values = self.get_query_arguments("ports")
        if not values:
            raise BadRequest('query parameter "ports" is required')
        ports = []
        for value in values:
            for part in value.split(","):
                try:
                    port = int(part)
                except ValueError:
                    raise BadRequest(f'unable to parse "{value}" as a port') from None
                if not 0 < port < 65536:
                    raise BadRequest(f'port "{value}" must be > 0')
                ports.append(port)
        return ports

    def _spdy_version(self, supported: list[str]) -> str:
        """The protocol a SPDY client and this server share: the client's first choice the server knows
        (``httpstream.Handshake``); none offered means the oldest, unnamed one."""
        offered = [v.strip() for header in self.request.headers.get_list("X-Stream-Protocol-Version")
                   for v in header.split(",") if v.strip()]
        if not offered:
            return supported[-1]
        for version in offered:
            if version in supported:
                return version
        raise Forbidden(f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                        f"server supports {supported}")

    # ---------------------------------------------------------------- after the upgrade

    async def _over_spdy(self, version: str, serve: Callable[[spdy.Session], Awaitable[None]],
                         release: Callable[[], Awaitable[None]]) -> None:
        """Answer ``101 Switching Protocols`` and run ``serve`` over the connection as SPDY."""
        stream = self.detach()
        head = (f"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {spdy.UPGRADE}\r\n"
                f"X-Stream-Protocol-Version: {version}\r\n\r\n")

        async def send(frame: bytes) -> None:
            await stream.write(frame)

        async def run() -> None:
            connection = spdy.Session(send)

            async def read() -> None:
                with contextlib.suppress(iostream.StreamClosedError, spdy.ProtocolError):
                    while True:
                        connection.feed(await stream.read_bytes(65536, partial=True))

            reader = asyncio.ensure_future(read())
            serving: asyncio.Future[None] | None = None
            try:
                await stream.write(head.encode())
                serving = asyncio.ensure_future(serve(connection))
                await asyncio.wait({reader, serving}, return_when=asyncio.FIRST_COMPLETED)
                if serving.done():
                    serving.result()
                    await connection.close()
                # else the client closed the connection: what it started ends with it
            except iostream.StreamClosedError:
                pass
            finally:
                connection.connection_lost()
                if serving is not None:
                    await cancel_and_wait(serving)
                await cancel_and_wait(reader)
                await shielded(connection.abort())
                await shielded(release())
                stream.close()

        task = self.server.streams.spawn(run(), f"spdy {self.request.path}")
        await asyncio.wait([task])

    async def _over_websocket(self, subprotocol: str, run: Callable[[], Awaitable[None]],
                              received: Callable[[bytes | str], None], closed: Callable[[], None],
                              release: Callable[[], Awaitable[None]]) -> None:
        """Accept the websocket with ``subprotocol``; then ``run`` until it returns or the client leaves."""
        self._subprotocol = subprotocol
        self._on_message = received
        self._on_close = closed

        async def main() -> None:
            try:
                await run()
            finally:
                await shielded(release())
                self.close(1000)

        self._start = main
        await websocket.WebSocketHandler.get(self)
        if self.ws_connection is None:  # the handshake failed and was answered
            await release()

    async def open(self, *args: Any, **kwargs: Any) -> None:
        assert self._start is not None
        self._run = self.server.streams.spawn(self._start(), f"websocket {self.request.path}")

    def on_message(self, message: bytes | str) -> None:
        self._on_message(message)

    def on_close(self) -> None:
        self._on_close()
        if self._run is not None and not self._run.done():
            self._run.cancel()

    async def _send(self, message: bytes | str) -> None:
        """Write one websocket message; a client that left has nothing more to receive."""
        with contextlib.suppress(websocket.WebSocketClosedError):
            await self.write_message(message, binary=isinstance(message, bytes))


def _as_bytes(message: bytes | str) -> bytes:
    return message if isinstance(message, bytes) else message.encode("latin-1")


# ------------------------------------------------------------------------------------------ logs


async def follow_log(handler: web.RequestHandler, server: ApiServer, cluster: MemoryCluster, namespace: str,
                     name: str, query: dict[str, str], tail_lines: int | None) -> None:
    """``pods/log?follow=true``: the log so far, then what the container writes until it stops.

    Called by the API server's resource handler; the ``pods/log`` read authorizes the caller and
    refuses containers that have nothing to show, exactly as an unfollowed read does.
    """
    container = query.get("container") or None
    await cluster.read_pod_log(name, namespace, container=container, tail_lines=0)
    pod = server.store.get(RESOURCES["pods"], namespace, name)
    try:
        kubelet = _node(server, pod)
    except ClusterError:
        kubelet = None
    if kubelet is None:  # no node runs it yet: the log that exists, as an unfollowed read
        text = await cluster.read_pod_log(name, namespace, container=container, tail_lines=tail_lines)
        handler.set_header("Content-Type", "text/plain")
        handler.finish(text)
        return
    handler.set_status(200)
    handler.set_header("Content-Type", "text/plain")
    try:
        async for chunk in kubelet.follow_log(namespace, name, _container(pod, container), tail_lines):
            handler.write(chunk)
            await handler.flush()
    except iostream.StreamClosedError:
        return
    if not handler._finished:
        handler.finish()

