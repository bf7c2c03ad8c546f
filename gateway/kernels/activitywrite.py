"""A kernel's recorded ``last_activity``, written back rate-limited, so the culler on any replica sees it.

Every replica follows the iopub of every running kernel (:mod:`gateway.kernels.activity`) and
so sees its activity as it happens; the record's ``last_activity`` matters for a replica that
starts later, or takes the duties over: it starts from what was recorded.  A replica writes it
back only when the activity it saw is newer than the recorded one by more than
``activity_write_interval`` (shorter than the cull interval), at most once per interval and
kernel, after a short random delay (so the replicas that saw the same activity do not all
write it): an idle kernel costs no API request, a busy one a write now and then.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import replace
from datetime import timedelta

from gateway.aio import OwnedTasks
from gateway.objects.record import KernelRecord, Phase

from .kernel import Kernel
from .records import RecordStore

log = logging.getLogger("gateway.kernels.activity")


class ActivityWriter:
    """Writes kernels' activity into their records, rate-limited (see the module docstring).

    The kernel service hooks :meth:`touched` on every kernel (``Kernel.on_activity``) and calls
    :meth:`stop` when it stops.
    """

    def __init__(self, records: RecordStore, interval: float, *, rng: random.Random | None = None) -> None:
        self._records = records
        self._interval = timedelta(seconds=interval)
        self._seconds = interval
        self._rng = rng or random.Random()
        self._pending: set[str] = set()
        self._tasks = OwnedTasks("activity write-back")

    def touched(self, kernel: Kernel) -> None:
        """The kernel was active (called synchronously on each tracked message): schedule a write if due."""
        if kernel.id in self._pending or not self._due(kernel, kernel.record):
            return
        self._pending.add(kernel.id)
        self._tasks.spawn(self._write(kernel), f"record the activity of kernel {kernel.id}")

    async def stop(self) -> None:
        await self._tasks.cancel_all()

    def _due(self, kernel: Kernel, record: KernelRecord | None) -> bool:
        return (record is not None and record.phase is Phase.RUNNING
                and kernel.last_activity - record.last_activity > self._interval)

    async def _write(self, kernel: Kernel) -> None:
        try:
            await asyncio.sleep(self._rng.uniform(0, self._seconds / 4))

            def newer(record: KernelRecord) -> KernelRecord | None:
                return replace(record, last_activity=kernel.last_activity) if self._due(kernel, record) else None

            await self._records.modify(kernel.id, newer)
        except Exception as error:  # a later activity tries again
            log.warning("could not record the activity of kernel %s: %s", kernel.id, error)
        finally:
            self._pending.discard(kernel.id)
