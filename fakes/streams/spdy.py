"""SPDY/3.1 as Kubernetes streaming speaks it: one connection, many streams, each opened by the client.

``kubectl exec``/``attach`` before 1.30, ``port-forward`` before 1.31, and every ``kubectl`` whose
websocket upgrade is refused use SPDY; ``kubectl port-forward`` from 1.31 on tunnels the same SPDY
through a websocket (``client-go/tools/portforward/tunneling_connection.go``: each websocket binary
message carries a run of SPDY bytes).  :class:`Session` is the server end, fed bytes by either
transport through :meth:`Session.feed` and writing through the ``send`` coroutine it is given.

The framing is SPDY draft 3 (``github.com/moby/spdystream/spdy/{types,read,write}.go``): control
frames ``1 | version(15) | type(16) | flags(8) | length(24)``, data frames ``0 | stream id(31) |
flags(8) | length(24)``; header blocks are zlib streams (one per direction, for the whole
connection) primed with the SPDY/3 dictionary, holding ``count(32)`` then ``len(32) name len(32)
value`` pairs with names lower-cased.  A server answers each SYN_STREAM with a SYN_REPLY
(``k8s.io/apimachinery/pkg/util/httpstream/spdy/connection.go`` ``newSpdyStreamHandler``), echoes
PINGs, half-closes with an empty DATA frame flagged FIN and ends with GOAWAY.  spdystream keeps no
flow-control window, so WINDOW_UPDATE and SETTINGS frames are read and ignored.
"""

from __future__ import annotations

import asyncio
import enum
import struct
import zlib
from collections.abc import Awaitable, Callable

from fakes.streams.spdy_dictionary import HEADER_DICTIONARY
from gateway.aio import OwnedTasks

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_CANCEL = 5
MAX_DATA = 0xFFFFFF
CHUNK = 32 * 1024

UPGRADE = "SPDY/3.1"
"""The ``Upgrade`` header of a SPDY request (``httpstream/spdy/upgrade.go`` ``HeaderSpdy31``)."""


class ProtocolError(Exception):
    """The peer sent what SPDY/3 does not allow; the session ends."""


class StreamState(enum.Enum):
    """Where a stream is in its two half-closes (SPDY draft 3, section 2.3.6)."""

    OPEN = "open"
    LOCAL_CLOSED = "half-closed (local)"  # this side sent FIN
    REMOTE_CLOSED = "half-closed (remote)"  # the client sent FIN
    CLOSED = "closed"


_AFTER_LOCAL_FIN = {StreamState.OPEN: StreamState.LOCAL_CLOSED, StreamState.REMOTE_CLOSED: StreamState.CLOSED}
_AFTER_REMOTE_FIN = {StreamState.OPEN: StreamState.REMOTE_CLOSED, StreamState.LOCAL_CLOSED: StreamState.CLOSED}
"""The allowed transitions; a reset (RST_STREAM, or the connection ending) closes from any state."""


class Stream:
    """One client-opened stream: its headers, what the client sent on it, and a way to answer."""

    def __init__(self, session: Session, stream_id: int, headers: dict[str, str], fin: bool) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.state = StreamState.OPEN
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        if fin:
            self._remote_fin()

    @property
    def local_closed(self) -> bool:
        return self.state in (StreamState.LOCAL_CLOSED, StreamState.CLOSED)

    @property
    def remote_closed(self) -> bool:
        return self.state in (StreamState.REMOTE_CLOSED, StreamState.CLOSED)

    def _remote_fin(self) -> None:
        if not self.remote_closed:
            self.state = _AFTER_REMOTE_FIN[self.state]
            self._incoming.put_nowait(None)

    def _reset(self) -> None:
        """RST_STREAM, or the connection ended: nothing more either way."""
        if not self.remote_closed:
            self._incoming.put_nowait(None)
        self.state = StreamState.CLOSED

    async def read(self) -> bytes:
        """The next data the client sent; ``b""`` once it half-closed (or reset) the stream."""
        data = await self._incoming.get()
        if data is None:
            self._incoming.put_nowait(None)
            return b""
        return data

    async def write(self, data: bytes) -> None:
        """Send ``data`` on this stream (dropped once this side closed it)."""
        if not self.local_closed:
            for start in range(0, len(data), CHUNK):
                await self.session.send_data(self.id, data[start:start + CHUNK], 0)

    async def close(self) -> None:
        """Half-close: this side sends nothing more."""
        if not self.local_closed:
            self.state = _AFTER_LOCAL_FIN[self.state]
            await self.session.send_data(self.id, b"", FLAG_FIN)


class Session:
    """The server end of one SPDY connection.

    The transport calls :meth:`feed` with each run of bytes read and :meth:`connection_lost`
    when its reads end; the protocol handler awaits :meth:`accept` for each stream the client
    opens (``None`` once no more can come) and :meth:`close` when it is done.
    """

    def __init__(self, send: Callable[[bytes], Awaitable[None]]) -> None:
        self._send = send
        self._buffer = bytearray()
        self._streams: dict[int, Stream] = {}
        self._accepted: asyncio.Queue[Stream | None] = asyncio.Queue()
        self._inflate = zlib.decompressobj(zdict=HEADER_DICTIONARY)
        self._deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                         zdict=HEADER_DICTIONARY)
        self._outgoing: asyncio.Queue[tuple[bytes, asyncio.Future[None]] | None] = asyncio.Queue()
        self._send_failed = False
        self.closed = False
        self._tasks = OwnedTasks("spdy session")
        self._writer = self._tasks.spawn(self._write_loop(), "spdy writer")

    # ---------------------------------------------------------------- reading

    def feed(self, data: bytes) -> None:
        """Parse every whole frame in what has arrived so far."""
        self._buffer += data
        while len(self._buffer) >= 8:
            length = int.from_bytes(self._buffer[5:8], "big")
            if len(self._buffer) < 8 + length:
                return
            head, payload = bytes(self._buffer[:8]), bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            flags = head[4]
            if head[0] & 0x80:
                version, frame_type = struct.unpack(">HH", head[:4])
                if version & 0x7FFF != VERSION:
                    raise ProtocolError(f"unsupported SPDY version {version & 0x7FFF}")
                self._control(frame_type, flags, payload)
            else:
                self._data(int.from_bytes(head[:4], "big") & 0x7FFFFFFF, flags, payload)

    def _control(self, frame_type: int, flags: int, payload: bytes) -> None:
        if frame_type == SYN_STREAM:
            stream_id = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            headers = self._headers(payload[10:])
            stream = Stream(self, stream_id, headers, bool(flags & FLAG_FIN))
            self._streams[stream_id] = stream
            self._enqueue(_control(SYN_REPLY, 0, stream_id.to_bytes(4, "big") + self._header_block({})))
            self._accepted.put_nowait(stream)
        elif frame_type == HEADERS:
            self._headers(payload[4:])  # keeps the shared zlib stream in step; no use for more headers
        elif frame_type == RST_STREAM:
            reset = self._streams.get(int.from_bytes(payload[:4], "big") & 0x7FFFFFFF)
            if reset is not None:
                reset._reset()
        elif frame_type == PING:
            self._enqueue(_control(PING, 0, payload[:4]))
        elif frame_type == GOAWAY:
            self.connection_lost()
        # SETTINGS, WINDOW_UPDATE and unknown types: nothing to do.

    def _data(self, stream_id: int, flags: int, payload: bytes) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.remote_closed:
            return
        if payload:
            stream._incoming.put_nowait(payload)
        if flags & FLAG_FIN:
            stream._remote_fin()

    def _headers(self, block: bytes) -> dict[str, str]:
        raw = self._inflate.decompress(block)
        count = int.from_bytes(raw[:4], "big")
        headers, at = {}, 4
        for _ in range(count):
            size = int.from_bytes(raw[at:at + 4], "big")
            name = raw[at + 4:at + 4 + size].decode("latin-1")
            at += 4 + size
            size = int.from_bytes(raw[at:at + 4], "big")
            value = raw[at + 4:at + 4 + size].decode("latin-1")
            at += 4 + size
            headers[name.lower()] = value.split("\x00")[0]
        return headers

    def connection_lost(self) -> None:
        """The transport's reads ended: every stream ends, and no new one will come."""
        if self.closed:
            return
        self.closed = True
        for stream in self._streams.values():
            stream._reset()
        self._accepted.put_nowait(None)

    async def accept(self) -> Stream | None:
        """The next stream the client opens; ``None`` once the connection has ended."""
        stream = await self._accepted.get()
        if stream is None:
            self._accepted.put_nowait(None)
        return stream

    # ---------------------------------------------------------------- writing

    def _enqueue(self, frame: bytes) -> asyncio.Future[None]:
        """Queue ``frame``; frames go out in the order queued (a stream's SYN_REPLY before its data)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._send_failed:
            done.set_result(None)
        else:
            self._outgoing.put_nowait((frame, done))
        return done

    async def _write_loop(self) -> None:
        """The one writer of the transport: frames must not interleave."""
        while True:
            item = await self._outgoing.get()
            if item is None:
                return
            frame, done = item
            if not self._send_failed:
                try:
                    await self._send(frame)
                except Exception:  # the client is gone: what is still queued is owed to no one
                    self._send_failed = True
                    self.connection_lost()
            if not done.done():
                done.set_result(None)

    def _header_block(self, headers: dict[str, str]) -> bytes:
        raw = bytearray(len(headers).to_bytes(4, "big"))
        for name, value in headers.items():
            for part in (name.lower().encode(), value.encode()):
                raw += len(part).to_bytes(4, "big") + part
        return self._deflate.compress(bytes(raw)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    async def send_data(self, stream_id: int, data: bytes, flags: int) -> None:
        """Send a DATA frame and wait until the transport took it."""
        header = (stream_id & 0x7FFFFFFF).to_bytes(4, "big") + bytes([flags]) + len(data).to_bytes(3, "big")
        await self._enqueue(header + data)

    async def close(self) -> None:
        """Say GOAWAY (last stream seen, status OK), send what is queued, and stop writing."""
        last = max(self._streams, default=0)
        self.connection_lost()
        self._enqueue(_control(GOAWAY, 0, last.to_bytes(4, "big") + (0).to_bytes(4, "big")))
        self._outgoing.put_nowait(None)
        await self._writer

    async def abort(self) -> None:
        """Stop writing at once (the handler itself is being cancelled)."""
        self.connection_lost()
        await self._tasks.cancel_all()


def _control(frame_type: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, frame_type, (flags << 24) | len(payload)) + payload
