"""Connections to one :class:`~gateway.cluster.kubernetes.endpoint.Endpoint`, kept open between requests.

A request takes an idle connection (the most recently used first: it is the least likely to
have been closed by the server) or opens one; afterwards it gives it back if the answer was read
whole and the server allows reuse, else closes it.  A watch takes one and never gives it back.
When the credentials change the transport starts a new pool and closes this one: idle
connections at once, those in use when their request gives them back.
"""

from __future__ import annotations

from .connection import Connection, connect
from .endpoint import Endpoint


class Pool:
    """Owned by :class:`~gateway.cluster.kubernetes.transport.Transport`; lives on the event loop."""

    def __init__(self, endpoint: Endpoint, keep: int) -> None:
        self.endpoint = endpoint
        self._keep = keep
        self._idle: list[Connection] = []
        self._open: set[Connection] = set()
        self.closed = False

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def take(self, connect_timeout: float) -> tuple[Connection, bool]:
        """A connection for one request, and whether it was used before (it may turn out to be stale)."""
        while self._idle:
            connection = self._idle.pop()
            if connection.usable:
                return connection, True
            self._forget(connection)
        connection = await connect(self.endpoint.address, connect_timeout)
        if self.closed:  # closed while connecting
            connection.close()
            raise ConnectionAbortedError("the connection pool is closed")
        self._open.add(connection)
        return connection, False

    def give_back(self, connection: Connection) -> None:
        """Keep ``connection`` for the next request if it can take one, else close it."""
        if not self.closed and connection.usable and len(self._idle) < self._keep:
            self._idle.append(connection)
        else:
            self._forget(connection)

    def _forget(self, connection: Connection) -> None:
        connection.close()
        self._open.discard(connection)

    def close(self) -> None:
        """Close the idle connections now; the others close as they are given back."""
        self.closed = True
        for connection in self._idle:
            self._forget(connection)
        self._idle.clear()

    def close_all(self) -> None:
        """Close every connection, in use or not (the adapter's end)."""
        self.close()
        for connection in list(self._open):
            self._forget(connection)
