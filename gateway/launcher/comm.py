"""The launcher's comm port: signal and shutdown requests from the gateway.

One JSON request per connection, ended by the gateway closing its side (see
:mod:`gateway.launcher.protocol`).  Only requests signed with the kernel's
connection key, fresh, and not seen before are carried out; anything else is
logged (without its contents) and the connection closed without an answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Callable

from .protocol import (
    COMM_ACK,
    COMM_MAX_CLOCK_SKEW_SECONDS,
    COMM_MAX_REQUEST_BYTES,
    CommRequest,
    CommRequestRejected,
    verify_comm_request,
)

log = logging.getLogger("gateway.launcher")

READ_TIMEOUT_SECONDS = 5.0
MAX_REMEMBERED_NONCES = 4096


class CommServer:
    """Serves the comm port (started by the launcher before it sends its payload).

    ``on_signal(signum)`` and ``on_shutdown()`` are called for accepted
    requests; signal 0 is a liveness probe and only acknowledged.
    """

    def __init__(
        self, *, kernel_id: str, key: str, on_signal: Callable[[int], None], on_shutdown: Callable[[], None]
    ) -> None:
        self._kernel_id = kernel_id
        self._key = key
        self._on_signal = on_signal
        self._on_shutdown = on_shutdown
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._server: asyncio.AbstractServer | None = None

    async def start(self, sock: socket.socket) -> None:
        """Serve on an already bound socket."""
        self._server = await asyncio.start_server(self._handle, sock=sock, limit=COMM_MAX_REQUEST_BYTES)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            data = await _read_request(reader)
            request = self._accept(data)
            if request is None:
                log.warning("comm request from %s refused", peer[0] if peer else "?")
                return
            if request.signum:
                log.info("comm request: signal %d", request.signum)
                self._on_signal(request.signum)
            writer.write(COMM_ACK)
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT_SECONDS)
            if request.shutdown:
                log.info("comm request: shutdown")
                self._on_shutdown()
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    def _accept(self, data: bytes | None) -> CommRequest | None:
        if data is None:
            return None
        try:
            request = verify_comm_request(
                json.loads(data.decode("utf-8")), kernel_id=self._kernel_id, key=self._key, now=time.time()
            )
        except (CommRequestRejected, UnicodeDecodeError, ValueError):
            return None
        if request.nonce in self._seen:
            return None
        self._remember(request)
        return request

    def _remember(self, request: CommRequest) -> None:
        # Nonces only need remembering while their requests are fresh enough to be accepted.
        self._seen[request.nonce] = request.ts
        horizon = time.time() - 2 * COMM_MAX_CLOCK_SKEW_SECONDS
        while self._seen and (len(self._seen) > MAX_REMEMBERED_NONCES or next(iter(self._seen.values())) < horizon):
            self._seen.popitem(last=False)


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """Read until the peer closes its side; ``None`` if too long or too slow."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READ_TIMEOUT_SECONDS
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await asyncio.wait_for(reader.read(COMM_MAX_REQUEST_BYTES), max(deadline - loop.time(), 0))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > COMM_MAX_REQUEST_BYTES:
            return None
        chunks.append(chunk)
