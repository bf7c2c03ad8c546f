"""Shutting down kernels left idle, as Jupyter Server's ``cull_idle_timeout`` does.

When ``cull_idle_timeout`` is positive, the replica holding the duties' Lease
runs the :class:`Culler`.  Every ``cull_interval`` seconds (a timer: it reads
the kernels' ``last_activity``, the latest of what this replica's iopub
watchers saw and what any replica recorded, and makes no cluster call) it
shuts down each kernel idle for longer than the timeout, unless the kernel is
busy (and ``cull_busy`` is off) or has connected clients (and
``cull_connected`` is off).  Kernels in the middle of a start, restart or
shutdown are left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta

from gateway.objects.record import KernelRecord
from gateway.observability.logs import kernel_logs

from .kernel import BUSY, IDLE, Kernel, utcnow
from .presence import connected_elsewhere
from .settings import KernelSettings
from .telemetry import KernelTelemetry

log = logging.getLogger("gateway.kernels.culling")


def should_cull(kernel: Kernel, settings: KernelSettings, now: datetime, record: KernelRecord | None = None) -> bool:
    """Whether ``kernel`` is idle enough to be culled at ``now`` (Jupyter Server's three criteria).

    ``kernel.last_activity`` is the latest activity this replica saw or any replica recorded (the
    record follower moves it forward); its clients are those connected here and those another
    replica recorded in ``record`` (the freshest known; the kernel's own by default, see
    :mod:`gateway.kernels.presence`).
    """
    if settings.cull_idle_timeout <= 0 or kernel.execution_state not in (IDLE, BUSY) or kernel.lock.locked():
        return False
    if now - kernel.last_activity <= timedelta(seconds=settings.cull_idle_timeout):
        return False
    if kernel.execution_state == BUSY and not settings.cull_busy:
        return False
    record = kernel.record if record is None else record
    connected = kernel.connections > 0 or connected_elsewhere(record, now, settings)
    return not (connected and not settings.cull_connected)


class Culler:
    """The periodic culling, run by the replica holding the duties' Lease (``gateway.kernels.duties``).

    ``kernels`` gives the kernels listed now, ``shutdown`` shuts one down (the kernel service's).
    """

    def __init__(self, settings: KernelSettings, kernels: Callable[[], Iterable[Kernel]],
                 shutdown: Callable[[str], Awaitable[None]], record_of: Callable[[str], KernelRecord | None], *,
                 telemetry: KernelTelemetry | None = None) -> None:
        self.settings = settings
        self._telemetry = telemetry or KernelTelemetry()
        self._kernels = kernels
        self._shutdown = shutdown
        self._record_of = record_of

    async def run(self) -> None:
        """Cull every ``cull_interval`` seconds until cancelled (at once if culling is off)."""
        if self.settings.cull_idle_timeout <= 0:
            return
        log.info("culling kernels idle for %ss, checking every %ss (busy: %s, connected: %s)",
                 self.settings.cull_idle_timeout, self.settings.cull_interval,
                 self.settings.cull_busy, self.settings.cull_connected)
        while True:
            await asyncio.sleep(self.settings.cull_interval)
            try:
                await self.cull_once()
            except Exception:
                log.exception("culling failed; trying again in %ss", self.settings.cull_interval)

    async def cull_once(self) -> list[str]:
        """Shut down every kernel that should be culled now; return their ids."""
        now = utcnow()
        culled = [k for k in list(self._kernels()) if should_cull(k, self.settings, now, self._record_of(k.id))]
        for kernel in culled:
            idle = int((now - kernel.last_activity).total_seconds())
            with kernel_logs(kernel.id):
                log.warning("culling %s kernel %s (%s) of %s with %d connections after %d s of inactivity",
                            kernel.execution_state, kernel.name, kernel.id, kernel.username, kernel.connections, idle)
            self._telemetry.culled(kernel, idle)
        results = await asyncio.gather(*(self._shutdown(k.id) for k in culled), return_exceptions=True)
        for kernel, result in zip(culled, results, strict=True):
            if isinstance(result, Exception):
                log.warning("culling kernel %s failed: %s", kernel.id, result)
        return [k.id for k in culled]

