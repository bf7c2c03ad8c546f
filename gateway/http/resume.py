"""A websocket client's session, which outlives a dropped connection: what its kernel sent meanwhile is kept for it.

Jupyter clients name their session in the websocket's URL (``?session_id=``): JupyterLab keeps one per
kernel connection, and Jupyter Server's gateway client reconnects with the same one when its
websocket to the gateway drops (an ingress's idle timeout, a network blip).  As Jupyter Server does
(its ``buffer_offline_messages``), when such a websocket closes while its kernel lives, the client's
bridge stays connected to the kernel (its own sockets, so the replies to what it asked still come to
it, its share of iopub, the kernel's restarts) and every frame meant for the client is kept, in
order.  The next websocket of the same session to this replica takes the session over: the kept
frames first, then the live ones.  A websocket of a session whose older websocket is still open here
(the client gave up on a connection this side still thinks alive) takes the session over too, and
the older one is closed.  A session resumes only with the protocol it began with (legacy or
``v1.kernel.websocket.jupyter.org``); a websocket with the other gets a new session.

A session is kept for at most :data:`KEPT_SECONDS` and :data:`KEPT_BYTES` of frames; the replica
keeps at most :data:`KEPT_SESSIONS` sessions per kernel and :data:`KEPT_BYTES_IN_ALL` in all.  Past a
bound, when the kernel ends, or when the gateway stops, a kept session is dropped: its sockets
closed, its frames discarded (and logged).  ``EG_BUFFER_OFFLINE_MESSAGES=False`` keeps none.  A
session's kept frames live in the replica that kept them: a client whose next connection reaches
another replica (this one died, or a Service without session affinity sent it elsewhere) begins a
new session there, which with an IPython kernel takes the session's identity over and gets the
replies to what it asked here (:func:`~gateway.http.podlink.client_identity`); a session resumed
here links again under its identity (:meth:`~gateway.http.bridge.KernelBridge.relink`).

The states of one session (:class:`SessionState`), moved only along :data:`TRANSITIONS`::

    attached ── its websocket closed, the kernel lives ──► kept ── a websocket of the session ──► attached
    attached ── its websocket closed, the kernel ended or no session_id ──► dropped
    kept ── the kernel ended, a bound passed, the gateway stops ──► dropped

The websocket handler (:mod:`gateway.http.websocket`) calls :meth:`ClientSessions.join` as a
websocket opens and :meth:`ClientSessions.left` as it closes; the session's bridge writes through
:meth:`ClientSession.write` and ends the client through :meth:`ClientSession.close_client`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Mapping
from typing import Protocol

from gateway.kernels.kernel import Kernel
from gateway.kernels.service import KernelService

from .bridge import KernelBridge
from .bridgestate import ENDING

log = logging.getLogger("gateway.http.websocket")

KEPT_SECONDS = 300.0
"""How long a session is kept for its client to return (Jupyter Server's gateway client retries for about a minute)."""
KEPT_BYTES = 16 * 1024 * 1024
"""The most frames one kept session holds, in bytes."""
KEPT_BYTES_IN_ALL = 256 * 1024 * 1024
"""The most frames all kept sessions of the replica hold, in bytes."""
KEPT_SESSIONS = 8
"""The most sessions kept for one kernel (each holds its sockets to the kernel's pod); the oldest goes first."""
MAX_SESSION_ID = 256
"""The longest ``session_id`` a websocket URL may carry (Jupyter clients send a UUID)."""


class SessionState(enum.Enum):
    """Where one :class:`ClientSession` is (see the module docstring)."""

    ATTACHED = "attached"
    """A websocket serves the session: frames go to it as they come."""
    KEPT = "kept"
    """Its websocket closed while the kernel lives: frames are kept for the session's next websocket."""
    DROPPED = "dropped"
    """Over: its bridge closed, nothing kept."""


TRANSITIONS: Mapping[SessionState, frozenset[SessionState]] = {
    SessionState.ATTACHED: frozenset({SessionState.KEPT, SessionState.DROPPED}),
    SessionState.KEPT: frozenset({SessionState.ATTACHED, SessionState.DROPPED}),
    SessionState.DROPPED: frozenset(),
}


class ClientEnd(Protocol):
    """The websocket serving a session (its handler)."""

    def send_frame(self, payload: str | bytes, binary: bool) -> None:
        """Write one frame to the client."""

    def end(self, reason: str = "") -> None:
        """Close the websocket: the kernel ended, or the session could not go on (``reason``, else the kernel's)."""

    def superseded(self) -> None:
        """Close the websocket: a newer websocket of the same session took the session over."""


class ClientSession:
    """One client's session with one kernel: its bridge, and where the bridge's frames go (see the module docstring)."""

    def __init__(self, sessions: ClientSessions, kernel: Kernel, session_id: str, protocol: str | None,
                 end: ClientEnd) -> None:
        self._sessions = sessions
        self.kernel = kernel
        self.session_id = session_id
        """The client's name for it; empty when the URL named none (such a session is never kept)."""
        self.protocol = protocol
        self.end: ClientEnd | None = end
        self.bridge: KernelBridge | None = None
        """Set by the handler that began the session, before anything is written."""
        self.state = SessionState.ATTACHED
        self._kept: list[tuple[str | bytes, bool]] = []
        self.kept_bytes = 0
        self._expiry: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ called by the bridge

    def write(self, payload: str | bytes, binary: bool) -> None:
        """One frame for the client: written to its websocket, or kept while it has none."""
        if self.state is SessionState.ATTACHED:
            assert self.end is not None
            self.end.send_frame(payload, binary)
        elif self.state is SessionState.KEPT:
            size = len(payload) if isinstance(payload, bytes) else len(payload.encode())
            if self.kept_bytes + size > self._sessions.max_kept_bytes or not self._sessions.reserve(size):
                self.drop(f"more than its client may miss came ({self._sessions.max_kept_bytes} bytes, or "
                          f"{self._sessions.max_kept_bytes_in_all} for all kept sessions)", warn=True)
                return
            self._kept.append((payload, binary))
            self.kept_bytes += size

    def close_client(self) -> None:
        """The kernel ended for good (the bridge told the client ``dead``): close the websocket, or drop the session."""
        if self.state is SessionState.ATTACHED:
            assert self.end is not None
            self.end.end()
        elif self.state is SessionState.KEPT:
            self.drop("its kernel ended")

    # ------------------------------------------------------------------ moves

    def _move(self, target: SessionState) -> None:
        if target not in TRANSITIONS[self.state]:
            raise RuntimeError(f"a client session cannot go from {self.state.value} to {target.value}")
        self.state = target

    def keep(self, seconds: float) -> None:
        """Its websocket closed and the kernel lives: keep what comes for ``seconds``."""
        self._move(SessionState.KEPT)
        self.end = None
        self._service.disconnected(self.kernel.id)
        if self.bridge is not None:
            self.bridge.client_away()
        self._expiry = asyncio.get_running_loop().call_later(
            seconds, self.drop, f"its client did not come back within {seconds:g} s")

    def attach(self, end: ClientEnd) -> int:
        """A websocket of the session came: it gets the kept frames, in order, then the live ones.

        Returns how many frames were kept.
        """
        self._move(SessionState.ATTACHED)
        self._cancel_expiry()
        self.end = end
        kept, self._kept = self._kept, []
        self._sessions.release(self.kept_bytes)
        self.kept_bytes = 0
        self._service.connected(self.kernel.id)
        for payload, binary in kept:  # no await between these and the live frames: the order holds
            end.send_frame(payload, binary)
        return len(kept)

    def drop(self, why: str, *, warn: bool = False) -> None:
        """End the session: close its bridge (its sockets to the kernel) and discard what was kept.

        ``why`` is logged for a kept session (as a warning with ``warn``: a bound passed).
        """
        if self.state is SessionState.DROPPED:
            return
        was = self.state
        self._move(SessionState.DROPPED)
        self._cancel_expiry()
        if was is SessionState.ATTACHED:
            self._service.disconnected(self.kernel.id)
            if self.end is not None:
                self.end.end(why)  # a no-op when the websocket closed already (the handler's own drop)
        else:
            log.log(logging.WARNING if warn else logging.INFO,
                    "kernel %s: the kept session %s was dropped, %d frames discarded: %s",
                    self.kernel.id, self.session_id[:64], len(self._kept), why)
        self._sessions.release(self.kept_bytes)
        self._kept, self.kept_bytes = [], 0
        self.end = None
        self._sessions.forget(self)
        if self.bridge is not None:
            self.bridge.close()

    def _cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    @property
    def _service(self) -> KernelService:
        return self._sessions.service


class ClientSessions:
    """This replica's client sessions that may be resumed: attached ones with a ``session_id``, and kept ones.

    One per HTTP application (:class:`~gateway.http.context.HttpContext`); the gateway calls
    :meth:`close` as it stops, before closing the websockets.
    """

    def __init__(self, service: KernelService, *, enabled: bool = True, max_kept_seconds: float = KEPT_SECONDS,
                 max_kept_bytes: int = KEPT_BYTES, max_kept_bytes_in_all: int = KEPT_BYTES_IN_ALL,
                 max_kept_sessions: int = KEPT_SESSIONS) -> None:
        self.service = service
        self.enabled = enabled
        self.max_kept_seconds = max_kept_seconds
        self.max_kept_bytes = max_kept_bytes
        self.max_kept_bytes_in_all = max_kept_bytes_in_all
        self.max_kept_sessions = max_kept_sessions
        self._named: dict[tuple[str, str], ClientSession] = {}
        self.kept_bytes = 0
        """The bytes of frames all kept sessions hold (each session's own are its ``kept_bytes``)."""
        self._closed = False

    def join(self, kernel: Kernel, session_id: str, protocol: str | None, end: ClientEnd) -> ClientSession:
        """A websocket opened (the handler's ``open``): the session it resumes (what was kept for it is
        written to it first), or a new one.

        A new session has no bridge yet: the handler makes it.  The session's websocket counts as one
        of the kernel's connections.
        """
        key = (kernel.id, session_id)
        session = self._named.get(key) if session_id else None
        if session is not None and (session.protocol != protocol or session.kernel is not kernel):
            session.drop("its client came back with another websocket protocol" if session.protocol != protocol
                         else "its kernel was started again")
            session = None
        if session is not None:
            if session.bridge is not None:  # another replica may have served the session meanwhile
                session.bridge.relink()
            if session.state is SessionState.ATTACHED:
                older, session.end = session.end, end
                if older is not None:
                    log.info("kernel %s: a newer websocket of session %s took it over; closing the older one",
                             kernel.id, session_id[:64])
                    older.superseded()
                return session
            given = session.attach(end)
            log.info("kernel %s: session %s resumed (%d frames kept meanwhile)", kernel.id, session_id[:64], given)
            return session
        session = ClientSession(self, kernel, session_id, protocol, end)
        if session_id:
            self._named[key] = session
        self.service.connected(kernel.id)
        return session

    def left(self, session: ClientSession, end: ClientEnd) -> None:
        """A websocket closed (the handler's ``on_close``): keep its session if it may come back, else drop it."""
        if session.state is not SessionState.ATTACHED or session.end is not end:
            return  # taken over by a newer websocket, or over already
        bridge = session.bridge
        if (not session.session_id or not self.enabled or self._closed or bridge is None
                or bridge.state in ENDING):
            session.drop("")
            return
        kept = [s for s in self.kept() if s.kernel is session.kernel]
        for oldest in kept[:max(0, len(kept) - self.max_kept_sessions + 1)]:
            oldest.drop(f"more than {self.max_kept_sessions} sessions of the kernel were kept", warn=True)
        session.keep(self.max_kept_seconds)
        log.info("kernel %s: the client of session %s left; what the kernel sends it is kept for %g s",
                 session.kernel.id, session.session_id[:64], self.max_kept_seconds)

    def close(self) -> None:
        """The gateway stops: keep nothing more and drop what is kept."""
        self._closed = True
        for session in list(self._named.values()):
            if session.state is SessionState.KEPT:
                session.drop("the gateway is stopping")

    def kept(self) -> list[ClientSession]:
        """The sessions kept now, oldest first."""
        return [s for s in self._named.values() if s.state is SessionState.KEPT]

    # ------------------------------------------------------------------ the sessions' calls

    def reserve(self, size: int) -> bool:
        """Count ``size`` more kept bytes, unless that would pass :attr:`max_kept_bytes_in_all`."""
        if self.kept_bytes + size > self.max_kept_bytes_in_all:
            return False
        self.kept_bytes += size
        return True

    def release(self, size: int) -> None:
        self.kept_bytes -= size

    def forget(self, session: ClientSession) -> None:
        key = (session.kernel.id, session.session_id)
        if self._named.get(key) is session:
            del self._named[key]
