"""The gateway's response port: where kernel launchers send their connection info.

One :class:`ResponseListener` per gateway process, created, started and stopped
by the composition root (``gateway.app``).  Before a kernel's pod is created,
the provisioner registers an expectation with :meth:`~ResponseListener.expect`
and later awaits it::

    pending = listener.expect(kernel_id, source_ip=SOURCE_IP_LATER, timeout=launch_timeout)
    ...create the pod, watch it until it has an IP...
    pending.set_source_ip(pod_ip)
    connection_info = await pending

A payload is accepted only for a kernel currently expected, only once, and,
when a source IP is known, only from that peer address.  The payload's
encryption keeps the connection key confidential, but anyone who can read a
pod spec has the public key, so these checks are what authenticates the
sender.  Payloads that arrive before the pod IP is known are held (a few per
kernel) until it is.  Everything refused is logged with its reason, never its
contents.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Generator
from typing import Any

from gateway.launcher.protocol import LEGACY_PAYLOAD_VERSION, PayloadError, parse_envelope
from gateway.observability.logs import kernel_logs

from .connection import ConnectionInfo
from .crypto import GatewayKeys

log = logging.getLogger("gateway.provisioner.response")

DEFAULT_RESPONSE_PORT = 8877
"""``EG_RESPONSE_PORT``'s default, as in Enterprise Gateway."""
MAX_HELD_PAYLOADS = 16
"""Payloads held per kernel while its pod IP is not known yet: the first from each of this many peers.

Keyed by peer so that one peer sending many payloads cannot crowd out the pod's own."""


def listen_host(response_ip: str, *, local: bool) -> str:
    """The address the response listener binds, chosen by the composition root (``gateway.app``).

    On the embedded cluster (``local``) launchers are local processes: ``127.0.0.1``.  Otherwise
    ``EG_RESPONSE_IP`` when it is set (the address launchers are told to call, e.g. the pod IP, or
    ``127.0.0.1`` to keep the port off the network), else every address (``0.0.0.0``), as Enterprise
    Gateway does.
    """
    if local:
        return "127.0.0.1"
    return response_ip or "0.0.0.0"


class _SourceIpLater:
    def __repr__(self) -> str:
        return "SOURCE_IP_LATER"


SOURCE_IP_LATER: Any = _SourceIpLater()
"""``expect(source_ip=SOURCE_IP_LATER)``: the pod IP will be given with ``set_source_ip``."""


class ResponseTimeout(asyncio.TimeoutError):
    """No acceptable payload arrived for the kernel within the expectation's timeout."""


class ResponseCancelled(Exception):
    """The expectation was cancelled, or the listener stopped, before a payload arrived."""


def _normalise_ip(ip: str) -> str:
    address = ipaddress.ip_address(ip.strip("[]"))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


class _Expectation:
    """One kernel's outstanding wait for its payload (owned by the listener)."""

    def __init__(self, kernel_id: str, source_ip: str | None, deferred: bool, future: asyncio.Future) -> None:
        self.kernel_id = kernel_id
        self.source_ip = source_ip
        self.deferred = deferred
        self.future: asyncio.Future[ConnectionInfo] = future
        self.held: dict[str, ConnectionInfo] = {}
        self.timer: asyncio.TimerHandle | None = None

    def offer(self, peer_ip: str, info: ConnectionInfo, version: int) -> None:
        if self.deferred:
            if peer_ip in self.held or len(self.held) >= MAX_HELD_PAYLOADS:
                log.warning("dropped a payload for kernel %s from %s: one already held", self.kernel_id, peer_ip)
                return
            self.held[peer_ip] = info
            return
        if self.source_ip is not None and peer_ip != self.source_ip:
            log.warning(
                "dropped a payload for kernel %s from %s: the kernel's pod is at %s",
                self.kernel_id,
                peer_ip,
                self.source_ip,
            )
            return
        self._resolve(peer_ip, info)
        log.info("connection info (v%d) accepted for kernel %s from %s", version, self.kernel_id, peer_ip)

    def set_source_ip(self, ip: str) -> None:
        self.source_ip, self.deferred = ip, False
        held, self.held = self.held, {}
        if ip in held:
            self._resolve(ip, held.pop(ip))
            log.info("held connection info accepted for kernel %s from %s", self.kernel_id, ip)
        for peer_ip in held:
            log.warning("dropped a held payload for kernel %s from %s: the pod is at %s", self.kernel_id, peer_ip, ip)

    def _resolve(self, peer_ip: str, info: ConnectionInfo) -> None:
        # The kernel binds 0.0.0.0 in a real pod; the address to dial is the pod's (as EG does).
        if self.source_ip is not None:
            info = info.with_ip(self.source_ip)
        elif info.ip in ("", "0.0.0.0"):
            info = info.with_ip(peer_ip)
        if not self.future.done():
            self.future.set_result(info)


class PendingResponse:
    """An awaitable handle on one expectation (returned by :meth:`ResponseListener.expect`).

    Awaiting it gives the :class:`ConnectionInfo` or raises
    :class:`ResponseTimeout` / :class:`ResponseCancelled`.  Cancelling the
    awaiting task cancels the expectation.
    """

    def __init__(self, listener: ResponseListener, expectation: _Expectation) -> None:
        self._listener = listener
        self._expectation = expectation

    @property
    def kernel_id(self) -> str:
        return self._expectation.kernel_id

    def set_source_ip(self, ip: str) -> None:
        """Give the pod IP once known; held payloads from it are accepted, others dropped."""
        self._listener._set_source_ip(self._expectation, ip)

    def cancel(self) -> None:
        """Withdraw the expectation (the launch failed): an awaiter gets :class:`ResponseCancelled`."""
        self._listener._withdraw(self._expectation)

    def done(self) -> bool:
        return self._expectation.future.done()

    def __await__(self) -> Generator[Any, None, ConnectionInfo]:
        return self._expectation.future.__await__()


class ResponseListener:
    """The TCP listener for launch payloads (started with the gateway, stopped when it stops).

    ``max_payload_bytes``, ``read_timeout`` and ``max_connections`` bound what
    any peer can make it hold: a connection that sends nothing is closed after
    ``read_timeout``, a payload over the size is dropped unread, and
    connections beyond ``max_connections`` at once, or beyond
    ``max_connections_per_peer`` from one address, are closed on arrival (so
    one misbehaving pod cannot crowd out the launchers of others).
    """

    def __init__(
        self,
        *,
        host: str = "0.0.0.0",
        port: int = DEFAULT_RESPONSE_PORT,
        accept_legacy_payloads: bool = True,
        keys: GatewayKeys | None = None,
        max_payload_bytes: int = 16384,
        read_timeout: float = 10.0,
        max_connections: int = 128,
        max_connections_per_peer: int = 4,
    ) -> None:
        self._host = host
        self._port = port
        self._accept_legacy = accept_legacy_payloads
        self._keys = keys if keys is not None else GatewayKeys(legacy=accept_legacy_payloads)
        self._max_payload_bytes = max_payload_bytes
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        self._max_per_peer = max_connections_per_peer
        self._per_peer: dict[str, int] = {}
        self._pending: dict[str, _Expectation] = {}
        self._connections: set[asyncio.StreamWriter] = set()
        self._server: asyncio.AbstractServer | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind and start accepting; with port 0 the system picks the port (see :attr:`port`)."""
        self._server = await asyncio.start_server(
            self._handle, self._host, self._port, reuse_address=True, limit=self._max_payload_bytes + 1
        )
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("listening for kernel connection info on %s:%d", self._host, self._port)

    async def stop(self) -> None:
        """Stop accepting, drop open connections, and fail every outstanding expectation."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._connections):
            writer.transport.abort()
        if server is not None:
            try:
                await asyncio.wait_for(server.wait_closed(), self._read_timeout)
            except asyncio.TimeoutError:
                log.warning("response listener: connections still closing at stop")
        for expectation in list(self._pending.values()):
            self._withdraw(expectation)

    async def __aenter__(self) -> ResponseListener:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def serving(self) -> bool:
        """Whether the listener accepts connections (the gateway's readiness probe asks)."""
        return self._server is not None and self._server.is_serving()

    @property
    def public_key(self) -> str:
        """For our launchers' ``KERNEL_RESPONSE_KEY``."""
        return self._keys.public_key

    @property
    def legacy_public_key(self) -> str | None:
        """For EG launchers' ``PUBLIC_KEY`` / ``--public-key``; ``None`` when legacy payloads are off."""
        return self._keys.legacy_public_key if self._accept_legacy else None

    # ------------------------------------------------------------------ expectations

    def expect(self, kernel_id: str, *, source_ip: str | None = None, timeout: float) -> PendingResponse:
        """Register that ``kernel_id``'s launcher will call back (called before its pod is created).

        ``source_ip`` is the pod IP the payload must come from, ``None`` to
        accept any peer, or :data:`SOURCE_IP_LATER` to hold payloads until
        :meth:`PendingResponse.set_source_ip`.  The timeout runs from now.
        Raises ``ValueError`` if the kernel is already expected.
        """
        if self.is_expected(kernel_id):
            raise ValueError(f"kernel {kernel_id} is already expected")
        deferred = source_ip is SOURCE_IP_LATER
        ip = None if deferred or source_ip is None else _normalise_ip(source_ip)
        loop = asyncio.get_running_loop()
        expectation = _Expectation(kernel_id, ip, deferred, loop.create_future())
        expectation.timer = loop.call_later(timeout, self._expire, expectation, timeout)
        expectation.future.add_done_callback(lambda _f: self._forget(expectation))
        self._pending[kernel_id] = expectation
        return PendingResponse(self, expectation)

    def set_source_ip(self, kernel_id: str, ip: str) -> None:
        """Same as :meth:`PendingResponse.set_source_ip`, by kernel id; ignored if not expected."""
        expectation = self._pending.get(kernel_id)
        if expectation is not None:
            self._set_source_ip(expectation, ip)

    def cancel(self, kernel_id: str) -> bool:
        """Withdraw an expectation (e.g. the launch failed); ``True`` if there was one."""
        expectation = self._pending.get(kernel_id)
        if expectation is None:
            return False
        self._withdraw(expectation)
        return True

    def is_expected(self, kernel_id: str) -> bool:
        expectation = self._pending.get(kernel_id)
        return expectation is not None and not expectation.future.done()

    def _set_source_ip(self, expectation: _Expectation, ip: str) -> None:
        if not expectation.future.done():
            expectation.set_source_ip(_normalise_ip(ip))

    def _withdraw(self, expectation: _Expectation) -> None:
        """Fail the expectation with :class:`ResponseCancelled`.

        Not a cancellation of its future: the launch awaiting it learns that the
        listener gave up (and the launch reports the listener stopped), where a
        cancelled future would look like its own cancellation.
        """
        if not expectation.future.done():
            expectation.future.set_exception(ResponseCancelled(f"kernel {expectation.kernel_id}: no longer expected"))

    def _expire(self, expectation: _Expectation, timeout: float) -> None:
        if not expectation.future.done():
            expectation.future.set_exception(
                ResponseTimeout(f"kernel {expectation.kernel_id}: no connection info within {timeout:g}s")
            )

    def _forget(self, expectation: _Expectation) -> None:
        if self._pending.get(expectation.kernel_id) is expectation:
            del self._pending[expectation.kernel_id]
        if expectation.timer is not None:
            expectation.timer.cancel()
        if not expectation.future.cancelled():
            expectation.future.exception()  # mark retrieved: an unawaited expectation is not an error

    # ------------------------------------------------------------------ connections

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        peer_ip = _normalise_ip(peer[0]) if peer else "?"
        from_peer = self._per_peer.get(peer_ip, 0)
        if len(self._connections) >= self._max_connections or from_peer >= self._max_per_peer:
            log.warning("refused a connection from %s: too many connections open", peer_ip)
            writer.transport.abort()
            return
        self._connections.add(writer)
        self._per_peer[peer_ip] = from_peer + 1
        try:
            data = await self._read(reader, peer_ip)
            if data is not None:
                self._receive(data, peer_ip)
        except Exception as exc:  # one bad connection must never take the listener down
            log.error("error handling a connection from %s: %s", peer_ip, exc.__class__.__name__)
        finally:
            self._connections.discard(writer)
            remaining = self._per_peer.pop(peer_ip) - 1
            if remaining:
                self._per_peer[peer_ip] = remaining
            writer.close()

    async def _read(self, reader: asyncio.StreamReader, peer_ip: str) -> bytes | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._read_timeout
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await reader.read(65536)
            except TimeoutError:
                log.warning("dropped a connection from %s: nothing complete within %gs", peer_ip, self._read_timeout)
                return None
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self._max_payload_bytes:
                log.warning("dropped a payload from %s: over %d bytes", peer_ip, self._max_payload_bytes)
                return None
            chunks.append(chunk)

    def _receive(self, data: bytes, peer_ip: str) -> None:
        try:
            envelope = parse_envelope(data)
        except PayloadError as exc:
            log.warning("dropped a payload from %s: %s", peer_ip, exc)
            return
        if not self._pending:  # spare the decryption work when no launch is in progress
            log.warning("dropped a payload from %s: no kernel is expected", peer_ip)
            return
        if envelope.get("version") == LEGACY_PAYLOAD_VERSION and not self._accept_legacy:
            log.warning("dropped a payload from %s: legacy (version 1) payloads are switched off", peer_ip)
            return
        claimed = GatewayKeys.peek_kernel_id(envelope)
        if claimed is not None and not self.is_expected(claimed):
            log.warning("dropped a payload from %s for kernel %s: not expected", peer_ip, claimed)
            return
        try:
            opened = self._keys.open(envelope)
            info = ConnectionInfo.from_payload(opened.info)
        except PayloadError as exc:
            log.warning("dropped a payload from %s: %s", peer_ip, exc)
            return
        expectation = self._pending.get(info.kernel_id)
        if expectation is None or expectation.future.done():
            log.warning("dropped a payload from %s for kernel %s: not expected", peer_ip, info.kernel_id)
            return
        with kernel_logs(info.kernel_id):
            expectation.offer(peer_ip, info, opened.version)
