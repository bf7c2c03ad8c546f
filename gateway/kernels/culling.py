"""Shutting down kernels left idle, as Jupyter Server's ``cull_idle_timeout`` does.

The kernel service starts a :class:`Culler` when ``cull_idle_timeout`` is
positive.  Every ``cull_interval`` seconds (a timer: it reads the kernels'
``last_activity``, kept current by their iopub watchers, and makes no cluster
call) it shuts down each kernel idle for longer than the timeout, unless the
kernel is busy (and ``cull_busy`` is off) or has connected clients (and
``cull_connected`` is off).  Kernels in the middle of a start, restart or
shutdown are left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta

from gateway.aio import cancel_and_wait

from .kernel import BUSY, IDLE, Kernel, utcnow
from .settings import KernelSettings

log = logging.getLogger("gateway.kernels.culling")


def should_cull(kernel: Kernel, settings: KernelSettings, now: datetime) -> bool:
    """Whether ``kernel`` is idle enough to be culled at ``now`` (Jupyter Server's three criteria)."""
    if settings.cull_idle_timeout <= 0 or kernel.execution_state not in (IDLE, BUSY) or kernel.lock.locked():
        return False
    idle_for = now - kernel.last_activity
    if idle_for <= timedelta(seconds=settings.cull_idle_timeout):
        return False
    if kernel.execution_state == BUSY and not settings.cull_busy:
        return False
    return not (kernel.connections and not settings.cull_connected)


class Culler:
    """The periodic culling task; :meth:`start` and :meth:`stop` are called by the kernel service."""

    def __init__(self, settings: KernelSettings, kernels: Callable[[], Iterable[Kernel]],
                 shutdown: Callable[[str], Awaitable[None]]) -> None:
        self.settings = settings
        self._kernels = kernels
        self._shutdown = shutdown
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.cull_idle_timeout > 0 and self._task is None:
            log.info("culling kernels idle for %ss, checking every %ss (busy: %s, connected: %s)",
                     self.settings.cull_idle_timeout, self.settings.cull_interval,
                     self.settings.cull_busy, self.settings.cull_connected)
            self._task = asyncio.create_task(self._run(), name="kernel-culler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def cull_once(self) -> list[str]:
        """Shut down every kernel that should be culled now; return their ids."""
        now = utcnow()
        culled = [k for k in list(self._kernels()) if should_cull(k, self.settings, now)]
        for kernel in culled:
            log.warning("culling %s kernel %s (%s) of %s with %d connections after %d s of inactivity",
                        kernel.execution_state, kernel.name, kernel.id, kernel.username, kernel.connections,
                        int((now - kernel.last_activity).total_seconds()))
        results = await asyncio.gather(*(self._shutdown(k.id) for k in culled), return_exceptions=True)
        for kernel, result in zip(culled, results, strict=True):
            if isinstance(result, Exception):
                log.warning("culling kernel %s failed: %s", kernel.id, result)
        return [k.id for k in culled]

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.cull_interval)
            try:
                await self.cull_once()
            except Exception:
                log.exception("culling failed; trying again in %ss", self.settings.cull_interval)
