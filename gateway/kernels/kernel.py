"""One kernel as the gateway tracks it: identity, lifecycle state, activity, connections.

A kernel is always in one :class:`KernelState` (the model's ``execution_state``) and moves only
along :data:`TRANSITIONS`: :meth:`Kernel.set_state` refuses any other move with
:class:`IllegalTransition`.  ``idle``/``busy`` (and a kernel's own ``starting``) come from its
iopub ``status`` messages (:mod:`gateway.kernels.activity`); every other state is set by the
kernel service (:mod:`gateway.kernels.service`, :mod:`gateway.kernels.pods`,
:mod:`gateway.kernels.restarts`), which holds :attr:`Kernel.lock` for every change that touches
the pod, so a restart and a shutdown of the same kernel never overlap and a kernel never has
two pods::

                          launched, or its first iopub status
      new Kernel ──► starting ──────────────────────────────► idle ◄──── iopub status ────► busy
                      ▲    ▲                                    │                            │
                      │    │ relaunch                           └──────────────┬─────────────┘
                      │    │                                                   │ from starting, idle or busy:
                      │    └──── restarting ◄─────── restart() ────────────────┤
                      └───────── autorestarting ◄─── its pod died ─────────────┤
                                                                               │
                                 terminating ◄────── shutdown(), cull, stop ───┤
                                      │                                        │
                                      ▼                                        │
                                    dead ◄────────── died past the restart ────┘
                                                     limit, or a relaunch failed

Besides the arrows drawn: a kernel at ``idle`` or ``busy`` may report itself ``starting`` on
iopub; ``restarting`` and ``autorestarting`` may end at ``dead`` when the pod cannot be
replaced; a first launch that fails leaves the kernel at ``starting``, never listed; and when
the gateway's stop cancels a restart or a shutdown half-way, the kernel is left at
``restarting``, ``autorestarting`` or ``terminating``, and the shutdown (or restart) that
follows takes it from there.  ``dead`` is final.

Every replica holds a :class:`Kernel` for every kernel of the cluster.  A replica that restarts,
shuts down or relaunches a kernel moves it along these arrows itself; the others move their
own :class:`Kernel` of it along the same arrows as its record changes
(:mod:`gateway.kernels.follower`): ``restarting`` (or ``autorestarting``), then ``starting``
and ``idle`` on the new pod; ``terminating``; ``dead`` when the record is gone.

Listeners (the websocket bridge) hear every state set through :meth:`Kernel.set_state` so they
can tell clients "restarting" or "dead", as Jupyter Server does, and hear ``idle`` when a
(re)launch completed: the kernel's connection info has changed then.  ``idle``/``busy`` from
iopub are not announced.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from gateway.objects.record import KernelRecord, Phase
from gateway.provisioner.connection import ConnectionInfo
from gateway.provisioner.model import LaunchRequest, Placement, RunningKernel

if TYPE_CHECKING:
    from .iopub import IopubFeed

log = logging.getLogger("gateway.kernels")


class KernelState(str, enum.Enum):
    """A kernel's lifecycle state; the value is the REST model's ``execution_state``."""

    STARTING = "starting"
    """A pod is being launched for the kernel, or the launched kernel has not reported its state yet."""
    IDLE = "idle"
    BUSY = "busy"
    RESTARTING = "restarting"
    """A client asked for a restart: the kernel's pod is being stopped, a new one follows."""
    AUTORESTARTING = "autorestarting"
    """The kernel's pod died on its own: the pod is being replaced."""
    TERMINATING = "terminating"
    """The kernel is being shut down: its pod, and what the gateway created for it, are being deleted."""
    DEAD = "dead"
    """The kernel is over; it is no longer listed."""

    def __str__(self) -> str:
        return self.value


STARTING = KernelState.STARTING
IDLE = KernelState.IDLE
BUSY = KernelState.BUSY
RESTARTING = KernelState.RESTARTING
AUTORESTARTING = KernelState.AUTORESTARTING
TERMINATING = KernelState.TERMINATING
DEAD = KernelState.DEAD

_UP = frozenset({STARTING, IDLE, BUSY})
"""A kernel on its pod, or launching one: what iopub moves among, and where every operation may begin."""
_REPLACING = frozenset({STARTING, DEAD, RESTARTING, TERMINATING})
"""Where a kernel whose pod is being replaced goes: its relaunch, its end when there can be none, or the
restart or shutdown that takes over after the gateway's stop cancelled the replacement."""

TRANSITIONS: Mapping[KernelState, frozenset[KernelState]] = {
    STARTING: _UP | {RESTARTING, AUTORESTARTING, TERMINATING, DEAD},
    IDLE: _UP | {RESTARTING, AUTORESTARTING, TERMINATING, DEAD},
    BUSY: _UP | {RESTARTING, AUTORESTARTING, TERMINATING, DEAD},
    RESTARTING: _REPLACING,
    AUTORESTARTING: _REPLACING,
    TERMINATING: frozenset({TERMINATING, DEAD}),
    DEAD: frozenset(),
}
"""The states each state may move to (see the module docstring's diagram)."""

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""``last_activity`` as Jupyter Server's gateway client parses it."""

LISTED_PHASES = frozenset({Phase.RUNNING, Phase.RESTARTING, Phase.TERMINATING})
"""Record phases of the kernels every replica lists: launched, and not yet gone (a first launch is not listed)."""

StateListener = Callable[["Kernel", KernelState], None]
ActivityListener = Callable[["Kernel"], None]


class IllegalTransition(RuntimeError):
    """A move :data:`TRANSITIONS` does not allow: a fault in the gateway, never the client's doing."""

    def __init__(self, kernel_id: str, current: KernelState, target: KernelState) -> None:
        super().__init__(f"kernel {kernel_id} cannot go from {current} to {target}")
        self.current = current
        self.target = target


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Kernel:
    """A kernel as this replica serves it: launched here, or adopted from its record; changed only by the kernel service."""

    def __init__(self, request: LaunchRequest) -> None:
        self.request = request
        self.id = request.kernel_id
        self.name = request.spec.name
        self.username = request.username
        self.execution_state: KernelState = STARTING
        self.last_activity = utcnow()
        self.connections = 0
        self.running: RunningKernel | None = None
        self.placement: Placement | None = None
        self.reason = ""
        self.restart_count = 0
        """Automatic restarts in a row (:mod:`gateway.kernels.restarts`)."""
        self.launched_at = time.monotonic()
        self.lock = asyncio.Lock()
        """Held by every operation of this replica that stops or launches this kernel's pod."""
        self.record: KernelRecord | None = None
        """The freshest record of the kernel this replica knows (``None`` until its first launch wrote one)."""
        self.on_activity: ActivityListener | None = None
        """Called after each :meth:`touch` (the kernel service writes recorded activity back, rate-limited)."""
        self.iopub: IopubFeed | None = None
        """The gateway's iopub subscription to the kernel's pod, while it has one (set by the kernel's pods)."""
        self._listeners: list[StateListener] = []
        self._waiters: list[tuple[Callable[[Kernel], bool], asyncio.Future[None]]] = []

    @property
    def state(self) -> KernelState:
        return self.execution_state

    @property
    def connection(self) -> ConnectionInfo | None:
        """How to reach the running kernel (``None`` while it has no pod)."""
        return self.running.connection if self.running else None

    @property
    def session_key(self) -> str | None:
        """The key signing this kernel's messages (never logged)."""
        return self.running.connection.key if self.running else None

    @property
    def is_dead(self) -> bool:
        return self.execution_state == DEAD

    @property
    def listed(self) -> bool:
        """Whether the kernel is listed and served: recorded as launched, and not over here."""
        return self.record is not None and self.record.phase in LISTED_PHASES and self.execution_state != DEAD

    def model(self) -> dict[str, Any]:
        """The kernel model of the REST API (Jupyter Server's fields, ``reason`` only when set)."""
        model: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "last_activity": self.last_activity.strftime(TIMESTAMP_FORMAT),
            "execution_state": str(self.execution_state),
            "connections": self.connections,
        }
        if self.reason:
            model["reason"] = self.reason
        return model

    # -- listeners --

    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener(kernel, state)`` on every state set by :meth:`set_state` (not on iopub's idle/busy)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: StateListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def wait_until(self, predicate: Callable[[Kernel], bool], timeout: float) -> None:
        """Wait until ``predicate(kernel)`` holds after a state change (``asyncio.TimeoutError`` after ``timeout``)."""
        if predicate(self):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            self._waiters.remove(entry)

    def _changed(self) -> None:
        for predicate, future in list(self._waiters):
            if not future.done() and predicate(self):
                future.set_result(None)

    # -- transitions (called by the kernel service and the iopub feed) --

    def set_state(self, state: KernelState, *, reason: str = "") -> None:
        """Move to ``state`` along :data:`TRANSITIONS` (else :class:`IllegalTransition`); listeners hear it.

        Called by the kernel service as it starts, restarts, shuts down or gives up a kernel.
        """
        self._enter(state)
        if reason:
            self.reason = reason
        log.debug("kernel %s is %s", self.id, state)
        for listener in list(self._listeners):
            try:
                listener(self, state)
            except Exception:
                log.exception("a state listener of kernel %s failed", self.id)
        self._changed()

    def _enter(self, state: KernelState) -> None:
        current = KernelState(self.execution_state)
        if state not in TRANSITIONS[current]:
            raise IllegalTransition(self.id, current, state)
        self.execution_state = state

    def launched(self, running: RunningKernel) -> None:
        """A (re)launch succeeded: the kernel has a pod and answers; it is idle until iopub says otherwise.

        Called by the kernel service at the end of every launch, with the kernel's lock held.
        """
        self.running = running
        self.placement = running.placement
        self.launched_at = time.monotonic()
        self.last_activity = utcnow()
        if self.execution_state == STARTING:
            self.set_state(IDLE)

    def stopped(self) -> None:
        """The kernel's pod is gone (its placement is kept for a relaunch)."""
        self.running = None

    def observe_status(self, execution_state: str, *, tracked: bool) -> None:
        """An iopub ``status``: taken when it answers a tracked request.

        Called by :func:`gateway.kernels.activity.record`.  As Jupyter Server: a status caused by
        ``kernel_info_request`` (sent by every connecting client) must not make a kernel look
        used.  A kernel that is starting keeps its state whatever iopub says (the launch's end,
        :meth:`launched`, makes it idle and tells the listeners: a websocket bridge waiting for
        the kernel connects then), and so does one restarting, terminating or dead.
        """
        if self.execution_state not in (IDLE, BUSY):
            return
        if tracked and execution_state in _UP:
            self._enter(KernelState(execution_state))
        self._changed()

    def touch(self) -> None:
        self.last_activity = utcnow()
        self._changed()
        if self.on_activity is not None:
            self.on_activity(self)

    def seen_active(self, moment: datetime) -> None:
        """Activity another replica recorded: ``last_activity`` moves forward to ``moment``, never back."""
        if moment > self.last_activity:
            self.last_activity = moment
            self._changed()
