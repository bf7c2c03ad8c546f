"""One kernel as the gateway tracks it: identity, lifecycle state, activity, connections.

States (the model's ``execution_state``)::

    starting --launched, first status--> idle <--iopub status--> busy
       |                                   |
       |            restart: restarting -> starting -> idle
       |            pod died: autorestarting -> starting -> idle  (or -> dead past the restart limit)
       |            shutdown / cull: terminating -> dead
       |            relaunch failed: dead
       +-- first launch failed: the kernel is never listed

``idle``/``busy`` come from the kernel's iopub ``status`` messages (see
:mod:`gateway.kernels.activity`); every other state is set by the kernel
service, which holds :attr:`Kernel.lock` for every transition that touches the
pod, so a restart and a shutdown of the same kernel never overlap and a kernel
never has two pods.  Listeners (the websocket bridge) hear about lifecycle
states so they can tell clients "restarting" or "dead", as Jupyter Server does,
and hear ``idle`` when a (re)launch completed: the kernel's connection info
has changed then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from gateway.provisioner.connection import ConnectionInfo
from gateway.provisioner.model import LaunchRequest, Placement, RunningKernel

log = logging.getLogger("gateway.kernels")

STARTING = "starting"
IDLE = "idle"
BUSY = "busy"
RESTARTING = "restarting"
AUTORESTARTING = "autorestarting"
TERMINATING = "terminating"
DEAD = "dead"
EXECUTION_STATES = frozenset({IDLE, BUSY})
TRANSITIONAL = frozenset({STARTING, RESTARTING, AUTORESTARTING, TERMINATING})
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""``last_activity`` as Jupyter Server's gateway client parses it."""

StateListener = Callable[["Kernel", str], None]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Kernel:
    """A kernel started by this gateway; created and changed only by the kernel service."""

    def __init__(self, request: LaunchRequest) -> None:
        self.request = request
        self.id = request.kernel_id
        self.name = request.spec.name
        self.username = request.username
        self.execution_state = STARTING
        self.last_activity = utcnow()
        self.connections = 0
        self.running: RunningKernel | None = None
        self.placement: Placement | None = None
        self.reason = ""
        self.restart_count = 0
        self.launched_at = time.monotonic()
        self.lock = asyncio.Lock()
        """Held by every operation that stops or launches this kernel's pod."""
        self._listeners: list[StateListener] = []
        self._waiters: list[tuple[Callable[[Kernel], bool], asyncio.Future[None]]] = []

    @property
    def state(self) -> str:
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

    def model(self) -> dict[str, Any]:
        """The kernel model of the REST API (Jupyter Server's fields, ``reason`` only when set)."""
        model: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "last_activity": self.last_activity.strftime(TIMESTAMP_FORMAT),
            "execution_state": self.execution_state,
            "connections": self.connections,
        }
        if self.reason:
            model["reason"] = self.reason
        return model

    # -- listeners --

    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener(kernel, state)`` on every lifecycle state change (not on idle/busy)."""
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

    # -- transitions (called by the kernel service and the activity watcher) --

    def set_state(self, state: str, *, reason: str = "") -> None:
        """Enter a lifecycle state; listeners hear it."""
        if self.execution_state == DEAD:
            return
        self.execution_state = state
        if reason:
            self.reason = reason
        log.debug("kernel %s is %s", self.id, state)
        for listener in list(self._listeners):
            try:
                listener(self, state)
            except Exception:
                log.exception("a state listener of kernel %s failed", self.id)
        self._changed()

    def launched(self, running: RunningKernel) -> None:
        """A (re)launch succeeded: the kernel has a pod and answers; it is idle until iopub says otherwise."""
        self.running = running
        self.placement = running.placement
        self.launched_at = time.monotonic()
        self.last_activity = utcnow()
        if self.execution_state in TRANSITIONAL:
            self.set_state(IDLE)

    def stopped(self) -> None:
        """The kernel's pod is gone (its placement is kept for a relaunch)."""
        self.running = None

    def observe_status(self, execution_state: str, *, tracked: bool) -> None:
        """An iopub ``status``: taken when it answers a tracked request, else only ends ``starting``.

        As Jupyter Server: a status caused by ``kernel_info_request`` (sent by
        every connecting client) must not make a kernel look used, but the
        first status after a start means the kernel is up.
        """
        if self.execution_state not in EXECUTION_STATES and self.execution_state != STARTING:
            return
        if tracked and execution_state in (IDLE, BUSY, STARTING):
            self.execution_state = execution_state
        elif self.execution_state == STARTING and execution_state != STARTING:
            self.execution_state = IDLE
        self._changed()

    def touch(self) -> None:
        self.last_activity = utcnow()
        self._changed()
