"""``WS /api/kernels/{id}/channels``: the tornado side of a client's kernel connection.

The upgrade request is authenticated like any request (token header or
``?token=``) and answered with a JSON 404 for an unknown kernel before any
upgrade.  The subprotocol ``v1.kernel.websocket.jupyter.org`` is chosen when
the client offers it, else the legacy protocol (:mod:`gateway.http.wsprotocol`).
Each client session (``?session_id=``, :mod:`gateway.http.resume`) gets its own
:class:`~gateway.http.bridge.KernelBridge`, which outlives a dropped websocket
until the session's next websocket takes it over.
Nagle's algorithm is off on the socket (a reply is a small write that must
not wait for an ACK), and tornado pings the client every
``EG_WS_PING_INTERVAL_SECS`` (the application's ``websocket_ping_interval``).
A client that leaves more than the settings' ``unsent_limit`` (32 MiB) of
frames unread (it stalled, or reads slower than its kernel prints) is
dropped, as a network failure would drop it, rather than letting the
gateway's memory grow with what it cannot send: what it had not read is
lost, and from then on its session is kept like any dropped one's.
"""

from __future__ import annotations

import functools
import logging
from asyncio import Future
from typing import Any

from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from .bridge import KernelBridge
from .errors import JsonErrors
from .resume import MAX_SESSION_ID, ClientSession
from .wsprotocol import V1_PROTOCOL, codec_for

log = logging.getLogger("gateway.http.websocket")

CLOSE_REASON_BYTES = 123
"""The longest reason a websocket close frame carries (its 125-byte payload less the status code)."""


class KernelChannelsHandler(JsonErrors, WebSocketHandler):
    session: ClientSession | None = None
    unsent = 0
    """Bytes of frames written to the websocket and not yet handed to the socket."""

    async def get(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise web.HTTPError(400, "This path only accepts websocket upgrades.")
        self.kernel = self.context.service.get(kernel_id)  # 404 before the upgrade
        self.session_id = self.get_query_argument("session_id", "")
        if len(self.session_id) > MAX_SESSION_ID:
            raise web.HTTPError(400, f"session_id is longer than {MAX_SESSION_ID} characters.")
        await super().get(kernel_id, *args, **kwargs)

    def check_origin(self, origin: str) -> bool:
        """Any origin: access is controlled by the token, as with EG's ``allow_origin='*'`` deployments."""
        return True

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return V1_PROTOCOL if V1_PROTOCOL in subprotocols else None

    def get_compression_options(self) -> None:
        return None  # kernel messages are small and latency matters more than bytes

    async def open(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:
        self.set_nodelay(True)
        self.context.websockets.add(self)
        self.session = session = self.context.client_sessions.join(self.kernel, self.session_id,
                                                                   self.selected_subprotocol, self)
        log.info("client connected to kernel %s (%s protocol)", kernel_id, self.selected_subprotocol or "legacy")
        if session.bridge is not None:
            return  # resumed: the session's bridge goes on
        session.bridge = KernelBridge(self.context.service, self.kernel, codec_for(self.selected_subprotocol),
                                      session.write, session.close_client,
                                      nudge_timeout=self.context.settings.nudge_timeout,
                                      session_id=self.session_id)
        try:
            await session.bridge.open()
        except BaseException:
            session.drop("its sockets to the kernel could not be made")
            raise

    async def on_message(self, message: str | bytes) -> None:
        session = self.session
        if session is not None and session.end is self and session.bridge is not None:
            await session.bridge.receive(message)

    def on_close(self) -> None:
        self.context.websockets.discard(self)
        if self.session is not None:
            self.context.client_sessions.left(self.session, self)
            log.info("client disconnected from kernel %s", self.session.kernel.id)

    # ------------------------------------------------------------------ the client session's calls

    def send_frame(self, payload: str | bytes, binary: bool) -> None:
        try:
            future = self.write_message(payload, binary=binary)
        except WebSocketClosedError:
            return
        size = len(payload)
        self.unsent += size
        future.add_done_callback(functools.partial(self._sent, size))
        stream = self.ws_connection.stream if self.ws_connection is not None else None
        if self.unsent > self.context.settings.unsent_limit and stream is not None and not stream.closed():
            log.warning("kernel %s: a websocket client left more than %d bytes unread; dropping its connection",
                        self.kernel.id, self.context.settings.unsent_limit)
            stream.close()  # a close frame would wait behind what the client does not read

    def _sent(self, size: int, future: Future[None]) -> None:
        self.unsent -= size
        if not future.cancelled():
            future.exception()  # a write to a connection closed meanwhile: nothing to do

    def end(self, reason: str = "") -> None:
        """The kernel died for good, or the session could not go on: the close frame says why, when the gateway knows."""
        reason = reason or (self.session.kernel.reason if self.session is not None else "") or "kernel gone"
        self.close(1000, _fit_close_reason(reason))

    def superseded(self) -> None:
        self.close(1000, "a newer connection of the same session took over")


def _fit_close_reason(reason: str) -> str:
    """``reason`` cut to the 123 bytes of UTF-8 a close frame carries (RFC 6455, 5.5)."""
    encoded = reason.encode()
    if len(encoded) <= CLOSE_REASON_BYTES:
        return reason
    return encoded[:CLOSE_REASON_BYTES - 3].decode(errors="ignore") + "..."

