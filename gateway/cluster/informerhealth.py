"""How an informer's view of the cluster is doing: synced, failing for a moment, unavailable, refused.

Each :class:`~gateway.cluster.informer.Informer` keeps one :class:`InformerHealth` as
``informer.health`` and moves it through the states of :class:`HealthState` as its lists and
watches succeed or fail; nothing else changes it.  Anyone may read it: the gateway's
readiness probe (``/readyz``) asks :attr:`InformerHealth.ready` and :attr:`InformerHealth.reason`,
metrics read the counters and times, tests await a state with :meth:`InformerHealth.wait_until`.

A failure that waiting may repair (the API server unreachable, answering 5xx, timing out)
leaves the informer ready for ``grace`` seconds (``DEGRADED``): a dropped connection or an API
server's restart must not take every replica out of its Service at once.  When the grace has
passed without a working list or watch, the informer is ``UNAVAILABLE``.  A refusal that
waiting does not repair, a rejected token or certificate (401, 403, a failed TLS handshake),
is ``REJECTED`` at once.  The first list or watch event that works again makes it ``SYNCED``.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.cluster.interface import Forbidden, Unauthorized, UntrustedServer


class HealthState(enum.Enum):
    """Where an informer stands with the API server."""

    STARTING = "starting"
    """Before the first list filled the cache."""
    SYNCED = "synced"
    """The last list, watch event or watch renewal worked."""
    DEGRADED = "degraded"
    """Lists or watches fail, for less than the grace so far: still ready."""
    UNAVAILABLE = "unavailable"
    """Lists or watches have failed for longer than the grace."""
    REJECTED = "rejected"
    """The API server refused the gateway's credentials (401, 403) or its TLS handshake failed."""
    STOPPED = "stopped"
    """The informer was stopped."""


READY_STATES = frozenset({HealthState.SYNCED, HealthState.DEGRADED})

_S = HealthState
TRANSITIONS: dict[HealthState, frozenset[HealthState]] = {
    _S.STARTING: frozenset({_S.SYNCED, _S.STOPPED}),
    _S.SYNCED: frozenset({_S.DEGRADED, _S.REJECTED, _S.STOPPED}),
    _S.DEGRADED: frozenset({_S.SYNCED, _S.UNAVAILABLE, _S.REJECTED, _S.STOPPED}),
    _S.UNAVAILABLE: frozenset({_S.SYNCED, _S.REJECTED, _S.STOPPED}),
    _S.REJECTED: frozenset({_S.SYNCED, _S.UNAVAILABLE, _S.STOPPED}),
    _S.STOPPED: frozenset(),
}
"""The moves :class:`InformerHealth` allows; staying in a state is not a move."""

DEFAULT_GRACE = 5.0
"""Seconds an informer stays ready while its lists and watches fail (``EG_READINESS_GRACE_SECS``)."""


def rejects_credentials(error: BaseException) -> bool:
    """Whether ``error`` is a refusal of the gateway's credentials, which waiting does not repair."""
    return isinstance(error, Unauthorized | Forbidden | UntrustedServer)


@dataclass(eq=False)
class InformerHealth:
    """One informer's health: its state, since when, and what went wrong last.

    Times are epoch seconds (``time.time()``).  ``relists`` counts the lists after the first
    (after a 410 Gone or a failure), ``watch_errors`` every failed list or watch request.
    """

    resource: str
    grace: float = DEFAULT_GRACE
    state: HealthState = HealthState.STARTING
    since: float = field(default_factory=time.time)
    """When the current state began."""
    last_sync: float | None = None
    """When a list, watch event or watch renewal last worked."""
    failing_since: float | None = None
    """When the current run of failures began; ``None`` while nothing fails."""
    last_error: str = ""
    """The last failure, as one line; kept after recovery, for the record."""
    relists: int = 0
    watch_errors: int = 0
    _waiters: list[asyncio.Future[None]] = field(default_factory=list, repr=False)

    @property
    def ready(self) -> bool:
        """Whether the informer's cache can be trusted now (``SYNCED``, or ``DEGRADED`` within the grace)."""
        return self.state in READY_STATES

    @property
    def reason(self) -> str:
        """Why the informer is not ready, in one sentence; ``""`` when it is."""
        if self.ready:
            return ""
        what = f"the {self.resource} informer"
        if self.state is HealthState.STARTING:
            return f"{what} has not listed the cluster yet"
        if self.state is HealthState.STOPPED:
            return f"{what} stopped"
        if self.state is HealthState.REJECTED:
            return f"the Kubernetes API refuses the gateway's credentials ({self.last_error})"
        seconds = time.time() - (self.failing_since or self.since)
        return f"the Kubernetes API has not answered {what} for {seconds:.0f}s ({self.last_error})"

    # ------------------------------------------------------------------ moves, made by the informer

    def synced(self) -> None:
        """A list, a watch event or a watch renewal worked."""
        self.last_sync = time.time()
        self.failing_since = None
        self._move(HealthState.SYNCED)

    def relisted(self) -> None:
        """A list after the first one worked."""
        self.relists += 1
        self.synced()

    def failed(self, error: BaseException) -> None:
        """A list or watch request failed with ``error``: ``REJECTED`` for a credential refusal, else
        ``DEGRADED`` (the grace starts with the first failure of a run)."""
        self.watch_errors += 1
        self.last_error = _one_line(error)
        if self.failing_since is None:
            self.failing_since = time.time()
        if rejects_credentials(error):
            self._move(HealthState.REJECTED)
        elif self.state is HealthState.SYNCED:
            self._move(HealthState.DEGRADED)
        elif self.state is HealthState.REJECTED:
            self._move(HealthState.UNAVAILABLE)

    def grace_passed(self, error: BaseException | None = None) -> None:
        """The run of failures outlasted the grace (``error``: what the check at its end met)."""
        if error is not None:
            self.last_error = _one_line(error)
            if rejects_credentials(error):
                self._move(HealthState.REJECTED)
                return
        if self.state is HealthState.DEGRADED:
            self._move(HealthState.UNAVAILABLE)

    def stopped(self) -> None:
        self._move(HealthState.STOPPED)

    def _move(self, state: HealthState) -> None:
        if state is self.state:
            return
        if state not in TRANSITIONS[self.state]:
            raise RuntimeError(f"{self.resource} informer health: {self.state.name} -> {state.name} is not a move")
        self.state, self.since = state, time.time()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------ waiting

    async def wait_until(self, predicate: Callable[[InformerHealth], bool], *, timeout: float) -> None:
        """Return once ``predicate(self)`` holds, checked now and after every change of state.

        Raises ``asyncio.TimeoutError`` after ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            left = deadline - loop.time()
            if left <= 0:
                raise asyncio.TimeoutError(f"{self.resource} informer health stayed {self.state.name}")
            changed = loop.create_future()
            self._waiters.append(changed)
            try:
                await asyncio.wait_for(changed, left)
            finally:
                if changed in self._waiters:
                    self._waiters.remove(changed)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."
