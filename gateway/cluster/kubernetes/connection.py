"""One connection to the API server, on the event loop: a request written, its answer read as it arrives.

:func:`connect` opens it (TCP, through an HTTP proxy's ``CONNECT`` tunnel when the credentials
name one, then TLS); :class:`Connection` is the asyncio protocol that buffers what arrives and
hands it to the reader (:mod:`.transport`, :mod:`.watch`) parsed by :mod:`.wire`.  One request
at a time; after a whole answer that allows it, the connection goes back to its
:class:`~gateway.cluster.kubernetes.pool.Pool` for the next.

Every wait for bytes has a deadline: a read timeout is the longest silence allowed between two
arrivals (a watch's is its ``timeoutSeconds`` and a grace), as a socket timeout would be.
"""

from __future__ import annotations

import asyncio
import enum
import ssl
from dataclasses import dataclass
from typing import cast

from .wire import MAX_HEAD, ChunkedDecoder, Framing, Head, ProtocolError, parse_head, request_head

HIGH_WATER = 4 * 1024 * 1024
"""Bytes buffered before the connection stops reading (a watch whose events are not being taken)."""

LOW_WATER = 256 * 1024
"""Bytes left in the buffer when reading resumes."""


class Dropped(ConnectionError):
    """The connection ended before the answer did; ``__cause__`` says why when the transport knew."""


class ReadTimeout(TimeoutError):
    """Nothing arrived for the read timeout."""


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy requests tunnel through (``CONNECT``), with the headers it wants."""

    host: str
    port: int
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Address:
    """Where to connect and how: the server, its TLS settings (``None``: plain HTTP) and a proxy."""

    host: str
    port: int
    tls: ssl.SSLContext | None
    server_hostname: str | None
    proxy: Proxy | None = None


class ConnectionState(enum.Enum):
    IDLE = "idle"  # open, no request in flight: may take one
    BUSY = "busy"  # a request is written and its answer not wholly read
    CLOSED = "closed"


class Connection(asyncio.Protocol):
    """The protocol of one connection (made by :func:`connect`, used by one request at a time)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._lost: BaseException | None = None
        self._paused = False
        self.state = ConnectionState.IDLE
        self.answered = False
        """Whether any byte of the current request's answer has arrived."""

    # ------------------------------------------------------------ asyncio's calls

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but have its methods
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self.answered = True
        if not self._paused and len(self._buffer) > HIGH_WATER and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._lost = exc
        self.state = ConnectionState.CLOSED
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ------------------------------------------------------------ the reader's calls

    @property
    def usable(self) -> bool:
        """Whether a new request may be sent on it (idle, and the server has not closed it)."""
        return (self.state is ConnectionState.IDLE and not self._eof and self._transport is not None
                and not self._transport.is_closing())

    def send(self, method: str, target: str, host: str, headers: dict[str, str], body: bytes | None) -> None:
        """Write one request (the connection must be :attr:`usable`)."""
        assert self._transport is not None and self.state is ConnectionState.IDLE
        self.state = ConnectionState.BUSY
        self.answered = False
        head = request_head(method, target, host, headers, None if body is None else len(body))
        self._transport.write(head + body if body else head)

    async def read_head(self, method: str, timeout: float) -> Head:
        """The answer's head (skipping interim 1xx answers)."""
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            while end < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise ProtocolError("the answer's head is too long")
                await self._more(timeout)
                end = self._buffer.find(b"\r\n\r\n")
            head = parse_head(bytes(self._buffer[:end]), method)
            del self._buffer[: end + 4]
            if head.status >= 200 or head.status == 101:
                return head

    async def read_body(self, head: Head, timeout: float) -> bytes:
        """The whole body; afterwards the connection is idle again, or closed if it cannot be reused."""
        if head.framing is Framing.LENGTH:
            while len(self._buffer) < head.length:
                await self._more(timeout)
            body = bytes(self._buffer[: head.length])
            del self._buffer[: head.length]
            self._done(head)
            return body
        reader = BodyReader(self, head)
        pieces = []
        while (piece := await reader.next(timeout)) is not None:
            pieces.append(piece)
        return b"".join(pieces)

    @property
    def ended(self) -> bool:
        """Whether the server closed its side (or the connection is closed)."""
        return self._eof or self.state is ConnectionState.CLOSED

    def _done(self, head: Head) -> None:
        if head.keep_alive and not self._buffer and self.state is ConnectionState.BUSY and not self._eof:
            self.state = ConnectionState.IDLE
        else:
            self.close()

    def close(self) -> None:
        """Close the connection now (an answer not wholly read, or the pool's end)."""
        self.state = ConnectionState.CLOSED
        if self._transport is not None:
            self._transport.abort()  # no TLS goodbye: the server may be what failed
        self._wake()

    # ------------------------------------------------------------ waiting

    async def _more(self, timeout: float, *, eof_ends: bool = False) -> None:
        """Wait until more bytes arrived; raise :class:`Dropped` when the connection ended instead."""
        if self._eof or self.state is ConnectionState.CLOSED:
            if eof_ends:
                return
            raise self._dropped()
        if self._paused and self._transport is not None:  # the reader wants more than the buffer holds
            self._paused = False
            self._transport.resume_reading()
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(timeout, _expire, waiter, timeout)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        if (self._eof or self.state is ConnectionState.CLOSED) and not self._buffer and not eof_ends:
            raise self._dropped()

    def _dropped(self) -> Dropped:
        error = Dropped(f"the connection ended: {self._lost}" if self._lost else "the server closed the connection")
        error.__cause__ = self._lost
        return error

    def _drained(self) -> None:
        if self._paused and len(self._buffer) < LOW_WATER and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()


def _expire(waiter: asyncio.Future[None], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(ReadTimeout(f"nothing arrived from the API server for {timeout:g} s"))


async def connect(address: Address, timeout: float) -> Connection:
    """Open a connection to ``address`` (through its proxy, then TLS), within ``timeout`` seconds.

    Raises ``OSError`` when it cannot connect, ``ssl.SSLError`` when TLS fails (an untrusted
    server certificate is ``ssl.SSLCertVerificationError``), :class:`TimeoutError` after
    ``timeout``, :class:`ProtocolError` when the proxy refuses the tunnel.
    """
    return await asyncio.wait_for(_connect(address, timeout), timeout)


async def _connect(address: Address, timeout: float) -> Connection:
    loop = asyncio.get_running_loop()
    if address.proxy is None:
        _, protocol = await loop.create_connection(
            Connection, address.host, address.port, ssl=address.tls, server_hostname=address.server_hostname
        )
        return protocol
    proxy = address.proxy
    transport, protocol = await loop.create_connection(Connection, proxy.host, proxy.port)
    if address.tls is None:  # plain HTTP goes through the proxy as absolute URLs, no tunnel
        return protocol
    try:
        authority = f"{_bracketed(address.host)}:{address.port}"
        protocol.send("CONNECT", authority, authority, dict(proxy.headers), None)
        head = await protocol.read_head("CONNECT", timeout)
        if head.status != 200:
            raise ProtocolError(f"the proxy refused the tunnel: {head.status} {head.reason}")
        tls_transport = await loop.start_tls(transport, protocol, address.tls, server_hostname=address.server_hostname)
    except BaseException:
        transport.abort()
        raise
    assert tls_transport is not None  # typeshed allows None; asyncio's and uvloop's start_tls return the transport
    protocol.connection_made(tls_transport)
    protocol.state = ConnectionState.IDLE
    return protocol


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class BodyReader:
    """A body read piece by piece as it arrives (a watch's events), on a :class:`Connection` whose head was read.

    ``next()`` returns the next piece, or ``None`` once the body ended (the connection is then
    idle again, or closed if it cannot be reused).
    """

    def __init__(self, connection: Connection, head: Head) -> None:
        self._connection = connection
        self._head = head
        self._left = head.length if head.framing is Framing.LENGTH else 0
        self._decoder = ChunkedDecoder() if head.framing is Framing.CHUNKED else None
        self._ready: list[bytes] = []
        self.ended = head.framing is Framing.EMPTY or (head.framing is Framing.LENGTH and head.length == 0)
        self._finished = False

    async def next(self, timeout: float) -> bytes | None:
        connection, buffer = self._connection, self._connection._buffer
        while not self._ready and not self.ended:
            if self._decoder is not None and (buffer or self._decoder.done):
                self._ready = self._decoder.feed(buffer)
                self._ready.reverse()
                self.ended = self._decoder.done
                if not self._ready and not self.ended:
                    await connection._more(timeout)  # a piece of a chunk-size line: wait for the rest
            elif self._head.framing is Framing.LENGTH and buffer:
                piece = bytes(buffer[: self._left])
                del buffer[: len(piece)]
                self._left -= len(piece)
                self._ready, self.ended = [piece], self._left == 0
            elif self._head.framing is Framing.UNTIL_CLOSE and buffer:
                self._ready = [bytes(buffer)]
                buffer.clear()
            elif self._head.framing is Framing.UNTIL_CLOSE and connection.ended:
                self.ended = True
            else:
                await connection._more(timeout, eof_ends=self._head.framing is Framing.UNTIL_CLOSE)
                continue
            connection._drained()
        if self._ready:
            return self._ready.pop()
        if not self._finished:
            self._finished = True
            connection._done(self._head)
        return None
