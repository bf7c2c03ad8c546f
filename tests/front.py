"""A round-robin TCP front over gateway replicas, as a Kubernetes Service without session affinity.

Used by ``tests/replicaharness.py`` (and so by ``tests/test_replicas.py`` and the scenarios'
``replicas`` target)::

    front = RoundRobinFront([("127.0.0.1", 8001), ("127.0.0.1", 8002)])
    await front.start()                          # clients use front.url
    ...
    front.set_backend(0, ("127.0.0.1", 8003))    # that replica came back on another port
    await front.stop()                           # every relayed connection closed

Each accepted connection goes to the next backend in turn, whatever it carries: successive
HTTP requests (each on its own connection) and websockets alternate between replicas.  A
backend that refuses the connection, or does not accept it within ``connect_timeout``, is
skipped for that connection; a connection no backend accepts is closed.  Bytes are relayed
both ways unchanged; when either side ends its connection, or fails, both are closed, so a
websocket ends with the replica it reached.

The front records what it saw in :attr:`RoundRobinFront.connections` (which backend each
connection reached, and the first line its client sent: ``GET /api/kernels HTTP/1.1``), so a
test can tell which replica served what, or wait for a connection with :meth:`wait_for`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.aio import OwnedTasks, cancel_and_wait

Address = tuple[str, int]

CONNECT_TIMEOUT = 5.0
"""Bound on connecting to one backend."""
CLOSE_TIMEOUT = 5.0
"""Bound on closing one side of a relayed connection, and on closing the listener."""
CHUNK = 64 * 1024


@dataclass
class Relayed:
    """One client connection the front handed to a backend."""

    number: int
    """The connection's rank among those the front accepted (from 1)."""
    backend: int
    """Index of the backend it reached."""
    address: Address
    request_line: str = ""
    """The first line its client sent (empty until the client sent one)."""
    open: bool = True


class RoundRobinFront:
    """A local TCP listener relaying each connection to the next of ``backends`` (see the module docstring)."""

    def __init__(self, backends: Sequence[Address], *, host: str = "127.0.0.1",
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        assert backends, "a front needs at least one backend"
        self.host = host
        self.port = 0
        self.connect_timeout = connect_timeout
        self.connections: list[Relayed] = []
        self._backends = list(backends)
        self._next = 0
        self._accepted = 0
        self._server: asyncio.Server | None = None
        self._tasks = OwnedTasks("front")
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def set_backend(self, index: int, address: Address) -> None:
        """Send the connections that fall to backend ``index`` to ``address`` from now on."""
        self._backends[index] = address

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop accepting and close every relayed connection (bounded; idempotent)."""
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), CLOSE_TIMEOUT)
        await self._tasks.cancel_all()

    def open_to(self, backend: int) -> list[Relayed]:
        """The connections to backend ``backend`` still open."""
        return [c for c in self.connections if c.open and c.backend == backend]

    async def wait_for(self, accept: Callable[[Relayed], bool], *, timeout: float, what: str = "") -> Relayed:
        """The first recorded connection for which ``accept`` holds, once there is one (at most ``timeout`` s)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = next((c for c in self.connections if accept(c)), None)
            if found is not None:
                return found
            changed = self._changed
            left = deadline - loop.time()
            if left <= 0:
                seen = [(c.number, c.backend, c.request_line, c.open) for c in self.connections[-10:]]
                raise AssertionError(f"the front saw no {what or 'such connection'} within {timeout}s; "
                                     f"last connections (number, backend, first line, open): {seen}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), left)

    # -- relaying --

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Called by the listener for each new client connection: relayed by a task of the front's own."""
        self._accepted += 1
        self._tasks.spawn(self._relay(self._accepted, reader, writer), f"connection {self._accepted}")

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _connect(self) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The next backend in turn that accepts a connection, skipping those that refuse; ``None`` if none does."""
        for _ in range(len(self._backends)):
            index = self._next
            self._next = (self._next + 1) % len(self._backends)
            host, port = self._backends[index]
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.connect_timeout)
            except (OSError, asyncio.TimeoutError):
                continue
            return index, reader, writer
        return None

    async def _relay(self, number: int, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        connected = await self._connect()
        if connected is None:
            await _close(client_writer)
            return
        index, backend_reader, backend_writer = connected
        for writer in (client_writer, backend_writer):
            _no_delay(writer)
        relayed = Relayed(number, index, self._backends[index])
        self.connections.append(relayed)
        self._notify()
        upstream = asyncio.create_task(self._pipe(client_reader, backend_writer, relayed), name=f"front {number} up")
        downstream = asyncio.create_task(self._pipe(backend_reader, client_writer, None), name=f"front {number} down")
        try:
            await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(upstream)
            await cancel_and_wait(downstream)
            await asyncio.gather(_close(client_writer), _close(backend_writer))
            relayed.open = False
            self._notify()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    relayed: Relayed | None) -> None:
        """Copy ``reader`` to ``writer`` until the reading side ends or either side fails."""
        first = relayed is not None
        with contextlib.suppress(OSError):
            while chunk := await reader.read(CHUNK):
                if first and relayed is not None:
                    relayed.request_line = chunk.split(b"\r\n", 1)[0].decode("latin-1")
                    first = False
                    self._notify()
                writer.write(chunk)
                await writer.drain()


def _no_delay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, asyncio.TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
