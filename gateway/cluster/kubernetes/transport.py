"""The adapter's HTTP client: one request to the API server, sent with the current credentials, its failure ours.

:class:`Transport` runs on the event loop (no thread per request): it takes a connection from
its :class:`~gateway.cluster.kubernetes.pool.Pool`, writes the request and reads the answer
(:mod:`.connection`).  At most ``max_in_flight`` requests are in flight at once (more wait for a
slot; watches do not count).  Bodies stay wire-format JSON.

Credentials: every ``refresh_interval`` the credential files are checked in a worker thread
(:meth:`Credentials.refresh`); a 401 or a failed TLS handshake checks them at once and, when they
changed (a rotated token, a new CA), sends the request once more: it was never served, so sending
it again is safe.

Retries, each after a jittered pause: a connect that failed (twice more), and a ``GET`` whose
kept-alive connection the server had closed before answering (once, as Go's ``net/http`` does
for replayable requests).  Nothing else: a request that reached the server may have taken
effect, and retrying read timeouts would multiply every timeout.

Every failure becomes our error (:mod:`gateway.cluster.status`): :func:`raise_status` for an
answer with a failure status, :func:`transport_error` for a request that got no answer.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from gateway.cluster.interface import ClusterError, ServerError, ServiceUnavailable, Timeout, UntrustedServer
from gateway.cluster.status import from_status
from gateway.jsoncodec import encode

from .connection import BodyReader, Connection, Dropped, ReadTimeout
from .credentials import Credentials
from .endpoint import JSON
from .pool import Pool
from .wire import Head, ProtocolError

CONNECT_ATTEMPTS = 3
"""Tries to open a connection before the request fails."""

RETRY_PAUSE = 0.05
"""Seconds before the first retry (then twice as long each time, with up to as much again of jitter)."""

REPLAYABLE = frozenset({"GET", "HEAD"})
"""Methods sent again when a kept-alive connection turns out to have been closed."""


class Answer:
    """An answer whose head was read: its status, and its body still to read (or stream)."""

    def __init__(self, connection: Connection, head: Head, pool: Pool, read_timeout: float) -> None:
        self.connection = connection
        self.head = head
        self._pool = pool
        self._read_timeout = read_timeout
        self._body: BodyReader | None = None

    @property
    def status(self) -> int:
        return self.head.status

    async def read(self) -> bytes:
        """The whole body; the connection goes back to the pool."""
        try:
            data = await self.connection.read_body(self.head, self._read_timeout)
        except BaseException as exc:
            self.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise transport_error(exc) from exc
        self._pool.give_back(self.connection)
        return data

    async def next_piece(self) -> bytes | None:
        """The next piece of the body as it arrives (a watch's events), ``None`` at its end; the
        connection then goes back to the pool."""
        if self._body is None:
            self._body = BodyReader(self.connection, self.head)
        try:
            piece = await self._body.next(self._read_timeout)
        except BaseException as exc:
            self.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise transport_error(exc) from exc
        if piece is None:
            self._pool.give_back(self.connection)
        return piece

    def close(self) -> None:
        """Drop the rest of the answer with its connection."""
        self.connection.close()
        self._pool.give_back(self.connection)


class Transport:
    """Sends the adapter's requests (made by :class:`~gateway.cluster.kubernetes.adapter.KubernetesCluster`)."""

    def __init__(self, credentials: Credentials, *, max_in_flight: int, connect_timeout: float) -> None:
        self.credentials = credentials
        self._connect_timeout = connect_timeout
        self._max_in_flight = max_in_flight
        self._slots: asyncio.Semaphore | None = None
        self._pool = Pool(credentials.endpoint, keep=max_in_flight)
        self._retired: list[Pool] = []
        self._refreshing: asyncio.Future[bool] | None = None
        self.closed = False

    @property
    def open_connections(self) -> int:
        """Connections open now (in use or idle), for tests and the adapter's close."""
        return self._pool.open_connections + sum(p.open_connections for p in self._retired)

    async def request(self, method: str, path: str, *, query: Mapping[str, Any] | None = None, body: Any = None,
                      content_type: str = JSON, read_timeout: float) -> bytes:
        """One whole request: send, read the body, raise our error for a failure status."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_in_flight)
        async with self._slots:
            answer = await self.send(method, path, query=query, body=body, content_type=content_type,
                                     read_timeout=read_timeout)
            data = await answer.read()
        if answer.status >= 400:
            raise_status(answer.status, data)
        return data

    async def send(self, method: str, path: str, *, query: Mapping[str, Any] | None = None, body: Any = None,
                   content_type: str = JSON, read_timeout: float) -> Answer:
        """Send one request and read the head of its answer; the caller reads (or streams) the body.

        Checks the credentials first when their refresh interval has passed, and again after a
        401 or a failed TLS handshake, then sends once more if they changed.
        """
        if self.closed:
            raise ServiceUnavailable("the cluster connection is closed")
        if self.credentials.due:
            await self._refresh(now=False)
        target = path + ("?" + urlencode({k: v for k, v in query.items() if v is not None}) if query else "")
        data = None if body is None else body if isinstance(body, bytes) else encode(body)
        try:
            answer = await self._send(method, target, data, content_type, read_timeout)
        except UntrustedServer:
            if not await self._refresh(now=True):
                raise
            return await self._send(method, target, data, content_type, read_timeout)
        if answer.status == 401 and await self._refresh(now=True):
            answer.close()
            return await self._send(method, target, data, content_type, read_timeout)
        return answer

    async def _send(self, method: str, target: str, data: bytes | None, content_type: str,
                    read_timeout: float) -> Answer:
        pool = self._pool
        endpoint = pool.endpoint
        headers = endpoint.headers()
        if data is not None:
            headers["Content-Type"] = content_type
        connect_failures = stale = 0
        while True:
            try:
                connection, reused = await pool.take(self._connect_timeout)
            except (OSError, TimeoutError, ProtocolError) as exc:
                error = transport_error(exc)
                connect_failures += 1
                if isinstance(error, UntrustedServer) or connect_failures >= CONNECT_ATTEMPTS or self.closed:
                    raise error from exc
                await _pause(connect_failures)
                continue
            try:
                connection.send(method, endpoint.target(target), endpoint.host_header, headers, data)
                head = await connection.read_head(method, read_timeout)
            except BaseException as exc:
                connection.close()
                pool.give_back(connection)
                if isinstance(exc, Dropped) and reused and not connection.answered and method in REPLAYABLE \
                        and not stale:
                    stale += 1  # the server had closed this kept-alive connection: a new one
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    raise
                raise transport_error(exc) from exc
            return Answer(connection, head, pool, read_timeout)

    async def _refresh(self, *, now: bool) -> bool:
        """Check the credentials in a worker thread; whether requests should use new ones now.

        Checks due by time are shared by the requests that find them due at once.
        """
        if now:
            changed = await asyncio.to_thread(self.credentials.refresh, now=True)
        else:
            if self._refreshing is None or self._refreshing.done():
                self._refreshing = asyncio.ensure_future(asyncio.to_thread(self.credentials.refresh))
            changed = await asyncio.shield(self._refreshing)
        if self.credentials.endpoint is not self._pool.endpoint and not self.closed:
            self._pool.close()
            self._retired = [p for p in [*self._retired, self._pool] if p.open_connections]
            self._pool = Pool(self.credentials.endpoint, keep=self._max_in_flight)
        return changed

    def close(self) -> None:
        """Close every connection; requests after this fail with ServiceUnavailable."""
        self.closed = True
        for pool in [self._pool, *self._retired]:
            pool.close_all()
        self._retired.clear()


async def _pause(attempt: int) -> None:
    delay = RETRY_PAUSE * 2 ** (attempt - 1)
    await asyncio.sleep(delay + random.uniform(0, delay))


def raise_status(code: int, body: bytes | str) -> None:
    """Raise our error for a failed answer (its body is the server's Status, or text)."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    raise from_status(code, text)


def transport_error(exc: BaseException) -> ClusterError:
    """Our error for a request that got no (whole) HTTP answer."""
    if isinstance(exc, ClusterError):
        return exc
    if _tls_failure(exc):
        return UntrustedServer(f"the TLS handshake with the API server failed: {_tls_reason(exc)}")
    if isinstance(exc, ReadTimeout):
        return Timeout(f"the API server did not answer in time: {exc}")
    if isinstance(exc, TimeoutError):
        return Timeout(f"connecting to the API server timed out: {exc or 'no answer'}")
    if isinstance(exc, Dropped):
        return ServiceUnavailable(f"lost the connection to the API server: {exc}")
    if isinstance(exc, ConnectionAbortedError):
        return ServiceUnavailable("the cluster connection is closed")
    if isinstance(exc, OSError):
        return ServiceUnavailable(f"cannot connect to the API server: {exc}")
    if isinstance(exc, ProtocolError):
        return ServerError(f"the API server's answer is not HTTP the gateway can read: {exc}")
    return ServerError(f"the request to the API server failed: {exc!r}")


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from or during."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen) or len(seen) > 10:
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__]
    return seen


_TRUST_FAILURES = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "UNKNOWN_CA", "BAD_CERTIFICATE",
                   "CERTIFICATE_REQUIRED", "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED")
"""OpenSSL's words for a certificate one side does not trust: unlike a connection cut mid-stream
(``SSLEOFError``), waiting does not repair these."""


def _tls_failure(exc: BaseException) -> bool:
    """Whether the request failed because a certificate was not trusted (the server's, after a CA change,
    or the gateway's client certificate, which the server refuses with an alert after the handshake)."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        if isinstance(cause, ssl.SSLError):
            text = str(cause.reason or "") + " " + str(cause)
            if any(word in text for word in _TRUST_FAILURES):
                return True
    return False


def _tls_reason(exc: BaseException) -> str:
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError) and cause.verify_message:
            return f"certificate verify failed: {cause.verify_message}"
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLError):
            return str(cause.reason or cause)
    return " ".join(str(exc).split())[:200]
