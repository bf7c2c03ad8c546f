"""The launcher's comm port: signal and shutdown requests from the gateway.

One JSON request per connection, ended by the gateway closing its side (see
:mod:`gateway.launcher.protocol`).  Only requests signed with the kernel's
connection key, fresh, and not seen before are carried out; anything else is
logged (without its contents) and the connection closed without an answer.

The port is served by threads of its own (an accepting thread, and one short-lived thread
per connection), so that it answers while the kernel runs user code in the same process's
main thread, and costs the kernel no event loop.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
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
MAX_OPEN_CONNECTIONS = 16
"""Connections served at once; more are closed on arrival, so slow peers cannot pile up threads."""


class CommServer:
    """Serves the comm port (started by the launcher before it sends its payload).

    ``on_signal(signum)`` and ``on_shutdown()`` are called, from a connection's
    thread, for accepted requests; signal 0 is a liveness probe and only
    acknowledged.
    """

    def __init__(
        self, *, kernel_id: str, key: str, on_signal: Callable[[int], object], on_shutdown: Callable[[], object]
    ) -> None:
        self._kernel_id = kernel_id
        self._key = key
        self._on_signal = on_signal
        self._on_shutdown = on_shutdown
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._seen_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_OPEN_CONNECTIONS)
        self._sock: socket.socket | None = None

    def start(self, sock: socket.socket) -> None:
        """Serve on an already bound and listening socket, from a daemon thread."""
        self._sock = sock
        threading.Thread(target=self._accept_loop, args=(sock,), name="comm-port", daemon=True).start()

    def close(self) -> None:
        """Stop accepting (called when the kernel has stopped); connections being served finish on their own."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread on Linux, where close alone does not
        except OSError:
            pass
        sock.close()

    def _accept_loop(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, peer = sock.accept()
            except OSError:
                return  # closed
            if not self._slots.acquire(blocking=False):
                log.warning("comm connection from %s refused: too many open", peer[0])
                conn.close()
                continue
            threading.Thread(target=self._handle, args=(conn, peer[0]), name="comm-request", daemon=True).start()

    def _handle(self, conn: socket.socket, peer_ip: str) -> None:
        try:
            request = self._accept(_read_request(conn))
            if request is None:
                log.warning("comm request from %s refused", peer_ip)
                return
            if request.signum:
                log.info("comm request: signal %d", request.signum)
                self._on_signal(request.signum)
            conn.sendall(COMM_ACK)
            if request.shutdown:
                log.info("comm request: shutdown")
                self._on_shutdown()
        except OSError:
            pass
        finally:
            conn.close()
            self._slots.release()

    def _accept(self, data: bytes | None) -> CommRequest | None:
        if data is None:
            return None
        try:
            request = verify_comm_request(
                json.loads(data.decode("utf-8")), kernel_id=self._kernel_id, key=self._key, now=time.time()
            )
        except (CommRequestRejected, UnicodeDecodeError, ValueError):
            return None
        with self._seen_lock:
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


def _read_request(conn: socket.socket) -> bytes | None:
    """Read until the peer closes its side; ``None`` if too long or too slow."""
    deadline = time.monotonic() + READ_TIMEOUT_SECONDS
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(COMM_MAX_REQUEST_BYTES)
        except TimeoutError:
            return None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > COMM_MAX_REQUEST_BYTES:
            return None
        chunks.append(chunk)
