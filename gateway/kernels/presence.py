"""Connected clients across replicas, for culling: an idle kernel with a client on any replica is not culled.

Websocket clients connect to whichever replica the Service picks, but only the replica holding
the duties' Lease culls.  With culling on and ``cull_connected`` off (Jupyter Server's default:
an open notebook keeps its kernel), each replica tells the others that clients are connected
to a kernel through the kernel's record (``connected``: replica -> when it last said so), and
the culler counts such a word as connected while it is younger than the idle timeout.

It costs nothing while it cannot matter: a replica writes only for a kernel that has clients
here and has been idle for half the idle timeout (the soonest the holder could cull it is after
the whole timeout), then again every half timeout while both remain true; and, when the last
client leaves, once to take its word back.  A replica that dies without taking it back leaves
a word that expires after the timeout.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from gateway.aio import OwnedTasks
from gateway.objects.record import KernelRecord, Phase

from .kernel import Kernel
from .records import RecordStore
from .settings import KernelSettings

log = logging.getLogger("gateway.kernels.presence")

RETRY_SECONDS = 30.0
"""How soon a word that could not be written is tried again (at most half the idle timeout)."""


def connected_elsewhere(record: KernelRecord | None, now: datetime, settings: KernelSettings) -> bool:
    """Whether a replica said, within the idle timeout, that clients are connected to the kernel (for the culler)."""
    if record is None:
        return False
    horizon = timedelta(seconds=settings.cull_idle_timeout)
    return any(now - when <= horizon for when in record.connected.values())


class Presence:
    """This replica's word on which kernels have clients here (see the module docstring).

    The kernel service calls :meth:`changed` after each connect and disconnect, and :meth:`stop`
    when it stops.
    """

    def __init__(self, records: RecordStore, identity: str, settings: KernelSettings) -> None:
        self._records = records
        self._identity = identity
        self._half = settings.cull_idle_timeout / 2
        self._enabled = settings.cull_idle_timeout > 0 and not settings.cull_connected
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks = OwnedTasks("client presence")

    def changed(self, kernel: Kernel) -> None:
        """The kernel's client count here changed: keep our word fresh while it has clients, take it back after."""
        if not self._enabled:
            return
        timer = self._timers.pop(kernel.id, None)
        if timer is not None:
            timer.cancel()
        if kernel.connections > 0:
            self._arm(kernel)
        elif kernel.record is not None and self._identity in kernel.record.connected:
            self._tasks.spawn(self._write(kernel, present=False), f"clients left kernel {kernel.id}")

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await self._tasks.cancel_all()

    def _arm(self, kernel: Kernel) -> None:
        """Say so when the kernel will have been idle for half the timeout (at once if it has, and we have not)."""
        said = kernel.record.connected.get(self._identity) if kernel.record is not None else None
        since = max(kernel.last_activity, said) if said is not None else kernel.last_activity
        delay = (since + timedelta(seconds=self._half) - _utcnow()).total_seconds()
        loop = asyncio.get_running_loop()
        self._timers[kernel.id] = loop.call_later(max(0.0, delay), self._due, kernel)

    def _due(self, kernel: Kernel) -> None:
        self._timers.pop(kernel.id, None)
        if kernel.connections <= 0 or kernel.is_dead:
            return
        said = kernel.record.connected.get(self._identity) if kernel.record is not None else None
        since = max(kernel.last_activity, said) if said is not None else kernel.last_activity
        if _utcnow() - since < timedelta(seconds=self._half):
            self._arm(kernel)  # active again meanwhile: later
            return
        self._tasks.spawn(self._write(kernel, present=True), f"clients on kernel {kernel.id}")

    async def _write(self, kernel: Kernel, *, present: bool) -> None:
        now = _utcnow()

        def change(record: KernelRecord) -> KernelRecord | None:
            if record.phase is not Phase.RUNNING:
                return None
            connected = dict(record.connected)
            if present:
                connected[self._identity] = now
            elif connected.pop(self._identity, None) is None:
                return None
            return replace(record, connected=connected)

        try:
            written = await self._records.modify(kernel.id, change)
        except Exception as error:
            log.warning("could not record the clients of kernel %s: %s", kernel.id, error)
            if present and kernel.connections > 0 and not kernel.is_dead:
                loop = asyncio.get_running_loop()
                self._timers[kernel.id] = loop.call_later(min(self._half, RETRY_SECONDS), self._due, kernel)
            return
        if written is not None and kernel.record is not None:
            kernel.record = written
        if present and kernel.connections > 0 and not kernel.is_dead:
            self._arm(kernel)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)
