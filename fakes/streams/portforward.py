"""Port-forward: a client's streams joined to connections into the pod, over SPDY or websocket channels.

Over SPDY (``portforward.k8s.io``, upgraded directly or tunnelled through a websocket), the client
opens two streams per forwarded connection, an ``error`` and a ``data`` stream with the same
``requestID`` header and the pod's ``port`` (``pkg/kubelet/cri/streaming/portforward/httpstream.go``);
once both are open the node dials the port, and the data stream carries the bytes both ways.  A
failure is written as text on the error stream; either way both streams are half-closed at the end,
which is what ``kubectl port-forward`` waits for before it closes the local connection.

Over websocket channels (``v4.channel.k8s.io``, ``?ports=80,8080``), each port ``i`` has a data
channel ``2i`` and an error channel ``2i+1``, and the server's first message on each is the port as
two little-endian bytes (``portforward/websocket.go`` ``handleWebSocketStreams``); one connection is
made per port, for the life of the websocket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

from fakes.streams import spdy
from gateway.aio import OwnedTasks, cancel_and_wait
from gateway.cluster.interface import ClusterError

PROTOCOL = "portforward.k8s.io"
"""The SPDY port-forward protocol (``k8s.io/apimachinery/pkg/util/portforward`` ``PortForwardProtocolV1Name``)."""
TUNNEL_PREFIX = "SPDY/3.1+"
"""How a websocket subprotocol names SPDY tunnelled inside it (``WebsocketsSPDYTunnelingPrefix``)."""
CHUNK = 32 * 1024


class Dialer(Protocol):
    """The node's side: a connection to ``port`` inside the pod."""

    async def __call__(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...


def failure(port: int, pod: str, uid: str, err: ClusterError) -> bytes:
    """The error-stream text for a port the node could not reach (``portforward/httpstream.go``)."""
    return f"error forwarding port {port} to pod {pod}, uid {uid}: {err.message}".encode()


async def _copy_out(reader: asyncio.StreamReader, send: Callable[[bytes], Awaitable[None]]) -> None:
    """The pod's bytes to the client, until the pod closes its side (or resets the connection)."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(CHUNK):
            await send(data)


# ------------------------------------------------------------------------------------------ SPDY


async def serve_spdy(connection: spdy.Session, dial: Dialer, pod: str, uid: str) -> None:
    """Forward every stream pair the client opens until the connection ends."""
    pending: dict[str, dict[str, spdy.Stream]] = {}
    tasks = OwnedTasks("port-forward pairs")
    try:
        while (stream := await connection.accept()) is not None:
            request = stream.headers.get("requestid", "")
            kind = stream.headers.get("streamtype", "")
            pair = pending.setdefault(request, {})
            pair[kind] = stream
            if {"error", "data"} <= pair.keys():
                del pending[request]
                tasks.spawn(_forward_pair(pair["data"], pair["error"], dial, pod, uid), f"port-forward {request}")
    finally:
        await tasks.cancel_all()


async def _forward_pair(data: spdy.Stream, error: spdy.Stream, dial: Dialer, pod: str, uid: str) -> None:
    try:
        port = int(data.headers.get("port", ""))
        if not 0 < port < 65536:
            raise ValueError(port)
    except ValueError:
        await error.write(f'invalid port header "{data.headers.get("port", "")}"'.encode())
        await _close(data, error)
        return
    try:
        reader, writer = await dial(port)
    except ClusterError as err:
        await error.write(failure(port, pod, uid, err))
        await _close(data, error)
        return
    feeding = asyncio.ensure_future(_copy_in(data, writer))
    try:
        await _copy_out(reader, data.write)
        await _close(data, error)
    finally:
        await cancel_and_wait(feeding)
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _copy_in(stream: spdy.Stream, writer: asyncio.StreamWriter) -> None:
    """The client's bytes into the pod; its half-close becomes the connection's."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await stream.read():
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def _close(*streams: spdy.Stream) -> None:
    for stream in streams:
        await stream.close()


# ------------------------------------------------------------------------------------------ channels


class ChannelForwarder:
    """Port-forward over websocket channels: one connection per requested port.

    ``send(channel, data)`` writes a channel message; the websocket handler passes each client
    message to :meth:`received` and awaits :meth:`run`, which returns when every port is done.
    """

    def __init__(self, ports: list[int], dial: Dialer, pod: str, uid: str,
                 send: Callable[[int, bytes], Awaitable[None]]) -> None:
        self._ports = ports
        self._dial = dial
        self._pod, self._uid = pod, uid
        self._send = send
        self._inbound: list[asyncio.Queue[bytes]] = [asyncio.Queue() for _ in ports]

    def received(self, channel: int, data: bytes) -> None:
        """A client message: data channels carry bytes for the pod; error channels are the server's."""
        if channel % 2 == 0 and channel // 2 < len(self._ports) and data:
            self._inbound[channel // 2].put_nowait(data)

    def closed(self) -> None:
        """The client went away: nothing more will come."""
        for queue in self._inbound:
            queue.put_nowait(b"")

    async def run(self) -> None:
        for i, port in enumerate(self._ports):
            prefix = port.to_bytes(2, "little")
            await self._send(2 * i, prefix)
            await self._send(2 * i + 1, prefix)
        await asyncio.gather(*(self._forward(i, port) for i, port in enumerate(self._ports)))

    async def _forward(self, index: int, port: int) -> None:
        try:
            reader, writer = await self._dial(port)
        except ClusterError as err:
            await self._send(2 * index + 1, failure(port, self._pod, self._uid, err))
            return
        inbound = self._inbound[index]

        async def into_pod() -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await inbound.get():
                    writer.write(data)
                    await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()

        feeding = asyncio.ensure_future(into_pod())
        try:
            await _copy_out(reader, lambda data: self._send(2 * index, data))
        finally:
            await cancel_and_wait(feeding)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
