"""One exec, attach or port-forward request, upgraded to the protocol its client speaks.

:class:`StreamHandler` is the transport both servers of the simulated cluster share: the API
server's ``pods/exec|attach|portforward`` (``fakes.apiserver.streaming``, which authorizes the
caller and finds the pod's node) and the node agent's kubelet API (``fakes.node.kubeletapi``,
which a real API server proxies those requests to, ``pkg/kubelet/server/server.go``
``getExec``/``getAttach``/``getPortForward``).  A subclass decides who may stream and to which
pod, then calls :meth:`StreamHandler.remote_command` or :meth:`StreamHandler.port_forward`
with the node's streaming server (:class:`NodeStreams`).  It speaks:

* websocket exec and attach, ``channel.k8s.io`` v1 to v5, binary or base64 (``channels``);
* SPDY/3.1 exec and attach (``X-Stream-Protocol-Version`` v1 to v5): what kubectl before 1.30
  speaks, what it falls back to, and what an API server's stream translator sends a kubelet;
* port-forward as SPDY (``portforward.k8s.io``), upgraded directly or tunnelled in a websocket
  (``SPDY/3.1+portforward.k8s.io``), and as websocket channels (``v4.channel.k8s.io`` with
  ``?ports=``, as the Python client speaks it).

Errors found before the upgrade are raised as :mod:`gateway.cluster.interface` errors for the
subclass to answer in its server's manner (a ``Status`` from an API server, text from a kubelet).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from tornado import iostream, websocket

from fakes.streams import channels, portforward, remotecommand, spdy
from fakes.streams.remotecommand import ContainerStream, Options
from gateway.aio import OwnedTasks, cancel_and_wait, shielded
from gateway.cluster.interface import BadRequest, Forbidden

UPGRADE_REQUIRED = "Upgrade request required"
MAX_MESSAGE = 16 * 1024 * 1024
"""The largest websocket message either server takes (tornado's ``websocket_max_message_size``)."""


class NodeStreams(Protocol):
    """What a node offers to stream to its pods (``fakes.node.streaming.NodeStreaming``)."""

    async def exec(self, namespace: str, pod: str, container: str, command: list[str], *,
                   stdin: bool, tty: bool) -> ContainerStream: ...

    def attach(self, namespace: str, pod: str, container: str) -> ContainerStream: ...

    async def port_forward(self, namespace: str, pod: str,
                           port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...


@dataclass(frozen=True)
class StreamParams:
    """How a server's query names the streams of an exec or attach, and what it says when none is asked for."""

    stdin: str
    stdout: str
    stderr: str
    none_asked: str


API_PARAMS = StreamParams("stdin", "stdout", "stderr", "you must specify at least one of stdin, stdout, or stderr")
"""An API server's ``PodExecOptions``/``PodAttachOptions``."""
KUBELET_PARAMS = StreamParams("input", "output", "error", "you must specify at least 1 of stdin, stdout, stderr")
"""What an API server sends a kubelet (``pod/strategy.go`` ``streamParams``: ``api.ExecStdinParam`` is
``input``...) and the kubelet reads (``remotecommand/httpstream.go`` ``NewOptions``)."""


def flag(value: str | None) -> bool:
    """A boolean query parameter as Kubernetes reads it (``1`` or ``true``)."""
    return (value or "").lower() in ("1", "true")


class StreamHandler(websocket.WebSocketHandler):
    """The upgrade and the protocols; subclasses route ``get``/``post`` and call the two entry points."""

    def initialize(self, tasks: OwnedTasks) -> None:
        self.stream_tasks = tasks
        self._subprotocol: str | None = None
        self._start: Callable[[], Coroutine[Any, Any, None]] | None = None
        self._on_message: Callable[[bytes | str], None] = lambda _: None
        self._on_close: Callable[[], None] = lambda: None
        self._run: asyncio.Task[None] | None = None

    def check_origin(self, origin: str) -> bool:
        return True  # API clients authenticate with tokens or certificates, never with a browser's cookies

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return self._subprotocol or None

    def get_compression_options(self) -> None:
        return None

    # ---------------------------------------------------------------- before the upgrade

    @property
    def upgrade(self) -> str:
        """``websocket``, ``spdy/3.1`` or ``""``: what the client asks to upgrade to (lower-cased)."""
        return self.request.headers.get("Upgrade", "").lower()

    def require_upgrade(self) -> bool:
        """Whether the request is a websocket one; :class:`BadRequest` when it upgrades to nothing we speak."""
        if self.upgrade not in ("websocket", spdy.UPGRADE.lower()):
            raise BadRequest(UPGRADE_REQUIRED)
        return self.upgrade == "websocket"

    def stream_options(self, container: str, subresource: str, params: StreamParams = API_PARAMS) -> Options:
        """The streams an exec or attach asks for, by the query ``params`` of the server; :class:`BadRequest` if none."""
        query = {k: v[-1].decode(errors="replace") for k, v in self.request.query_arguments.items()}
        options = Options(
            container=container,
            command=tuple(self.get_query_arguments("command")) if subresource == "exec" else (),
            stdin=flag(query.get(params.stdin)), stdout=flag(query.get(params.stdout)),
            stderr=flag(query.get(params.stderr)), tty=flag(query.get("tty")),
        )
        if not (options.stdin or options.stdout or options.stderr):
            raise BadRequest(params.none_asked)
        if subresource == "exec" and not options.command:
            raise BadRequest("you must specify at least 1 command")
        return options

    async def remote_command(self, node: NodeStreams, namespace: str, pod: str, subresource: str,
                             options: Options) -> None:
        """Start the exec (or attach) on ``node``, then upgrade and relay it until it ends."""
        over_websocket = self.require_upgrade()
        if over_websocket:
            protocol = channels.negotiate(channels.offered(self.request.headers.get("Sec-WebSocket-Protocol")),
                                          channels.REMOTE_COMMAND)
            if protocol is None:
                raise BadRequest("requested protocol(s) are not supported")
        else:
            version = self._spdy_version(remotecommand.SPDY_PROTOCOLS)
        if subresource == "exec":
            session = await node.exec(namespace, pod, options.container, list(options.command),
                                      stdin=options.stdin, tty=options.tty)
        else:
            session = node.attach(namespace, pod, options.container)
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

    async def port_forward(self, node: NodeStreams, namespace: str, name: str, uid: str,
                           ports_param: str = "ports") -> None:
        """Upgrade, then join each connection the client forwards to the pod's port on ``node``.

        ``ports_param`` names the query parameter listing a websocket client's ports: an API server's
        ``PodPortForwardOptions`` say ``ports``; what it sends a kubelet says ``port`` (``api.PortHeader``).
        """
        over_websocket = self.require_upgrade()

        async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await node.port_forward(namespace, name, port)

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
            ports = self._ports(ports_param)
            forwarder = portforward.ChannelForwarder(ports, dial, name, uid,
                                                     lambda channel, data: self._send(protocol.encode(channel, data)))

            def received(message: bytes | str) -> None:
                decoded = protocol.decode(message)
                if decoded is not None:
                    forwarder.received(*decoded)

            await self._over_websocket(protocol.name, forwarder.run, received, forwarder.closed, nothing)

    def _ports(self, param: str) -> list[int]:
        """``?ports=80,8080`` (``portforward/websocket.go`` ``NewV4Options``)."""
        values = self.get_query_arguments(param)
        if not values:
            raise BadRequest(f'query parameter "{param}" is required')
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

        task = self.stream_tasks.spawn(run(), f"spdy {self.request.path}")
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
        self._run = self.stream_tasks.spawn(self._start(), f"websocket {self.request.path}")

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
