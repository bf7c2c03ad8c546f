"""The duties that must happen once across the gateway's replicas, run by whichever replica holds the Lease.

Auto-restart of kernels whose pod died (:mod:`gateway.kernels.restarts`), culling of idle
kernels (:mod:`gateway.kernels.culling`) and the collection of what dead replicas left behind
(:mod:`gateway.kernels.collect`) run only on the replica the
:class:`~gateway.cluster.lease.LeaseElector` says leads.  When it starts leading, each duty
starts by deriving what to do from the cluster (records and pods), so a takeover after the
previous holder died misses nothing; when it stops leading (its renewals failed, or the
gateway stops), the duties are cancelled.  Operations a duty started (an auto-restart under
way) belong to the kernel service and are finished: their records are claimed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from gateway.aio import Backoff, OwnedTasks, cancel_and_wait
from gateway.cluster.lease import LeaseElector

log = logging.getLogger("gateway.kernels.duties")

Duty = Callable[[], Awaitable[None]]

RESTART_CAP_SECONDS = 30.0
"""The longest pause before a failed duty runs again."""


class Duties:
    """Runs ``duties`` (each a coroutine function looping until cancelled) while this replica leads.

    Made by the kernel service; :meth:`start` from its start, :meth:`stop` from its stop.
    """

    def __init__(self, lease: LeaseElector, duties: dict[str, Duty]) -> None:
        self._lease = lease
        self._duties = duties
        self._tasks = OwnedTasks("duties")
        self._running: list[asyncio.Task[None]] = []
        self._stopped = False
        lease.listen(self._leading)

    @property
    def running(self) -> bool:
        """Whether this replica runs the duties now."""
        return bool(self._running)

    def start(self) -> None:
        """Run the duties whenever this replica leads, from now on (at once if it leads already)."""
        self._stopped = False
        self._leading(self._lease.leading)

    async def stop(self) -> None:
        """Stop running the duties (the gateway stops)."""
        self._stopped = True
        running, self._running = self._running, []
        await asyncio.gather(*(cancel_and_wait(task) for task in running))
        await self._tasks.cancel_all()

    def _leading(self, leading: bool) -> None:
        """The lease elector's listener: start the duties when this replica leads, cancel them when it stops."""
        if leading and not self._running and not self._stopped:
            log.info("%s runs the duties: auto-restart, culling, collection of leftovers", self._lease.identity)
            self._running = [self._tasks.spawn(self._run(name, duty), name) for name, duty in self._duties.items()]
        elif not leading and self._running:
            running, self._running = self._running, []
            for task in running:
                task.cancel()

    @staticmethod
    async def _run(name: str, duty: Duty) -> None:
        """Run one duty until cancelled; a duty that fails (a bug, not an API error: those it retries
        itself) is logged and run again after a jittered pause, so one bad kernel cannot stop it."""
        backoff = Backoff(base=1.0, cap=RESTART_CAP_SECONDS)
        while True:
            try:
                await duty()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                delay = backoff.fail()
                log.exception("the %s duty failed; running it again in %.1fs", name, delay)
            await asyncio.sleep(delay)
