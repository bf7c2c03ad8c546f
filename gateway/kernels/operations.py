"""Restart, shutdown and auto-restart of one kernel, claimed through its record so one replica does each.

Every operation that stops or launches a kernel's pod first **claims** the kernel's record:
it replaces the record, under the ``resourceVersion`` it read, with the phase it is about to
carry out (``restarting``, ``terminating``) and this replica as its ``actor``.  Of two replicas
claiming at once one wins; the other gets a 409, reads the record again and decides again:

* the record is ``running`` (the other one wrote something else, activity say): claim again;
* another replica is restarting the kernel: a restart waits for that restart's result and
  returns it (no second pod); a shutdown waits for it to end, then shuts the kernel down;
* another replica is shutting it down: both wait for the record to go, then report the
  kernel gone (404 for a restart, done for a shutdown).

Waits for another replica happen without the kernel's lock (so this replica follows the
kernel meanwhile) and end by the record's ``launch_deadline`` plus a grace; past it the lease
holder takes the operation over.  Within this replica the kernel's lock orders operations as
before: a restart queued behind a restart runs after it, and a kernel never has two pods.

:class:`KernelOperations` is made by the kernel service; the lease holder's duties
(:mod:`gateway.kernels.restarts`, :mod:`gateway.kernels.collect`) call :meth:`~KernelOperations.autorestart`
and :meth:`~KernelOperations.take_over`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from gateway.aio import Backoff, shielded
from gateway.cluster.interface import ClusterError, Conflict, NotFound
from gateway.objects.record import KernelRecord, Phase, RestartKind
from gateway.provisioner.model import Placement

from .admissions import Admissions
from .errors import KernelError, KernelLaunchFailed, KernelNotFound
from .follower import RecordFollower
from .kernel import AUTORESTARTING, RESTARTING, TERMINATING, Kernel
from .pods import KernelPods
from .recorded import answer_by, claimed, launch_deadline, running
from .records import RecordStore, RecordUnavailable
from .settings import KernelSettings
from .telemetry import KernelTelemetry

if TYPE_CHECKING:
    from .restarts import RestartPauses

log = logging.getLogger("gateway.kernels")

STABLE_START_SECONDS = 10.0
"""A kernel whose pod lived this long since its last launch starts counting restarts from zero again."""
CLAIM_RETRY_SECONDS = 0.5
CLAIM_RETRY_CAP_SECONDS = 10.0
"""The back-off of an auto-restart whose record the API would not take."""
STOP_BOUND_SECONDS = 10.0
"""What a shutdown may take beyond the kernel's ``shutdown_wait_time`` (the pod's deletion)."""
_UP = frozenset({"starting", "idle", "busy"})


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class LostClaim(KernelError):
    """Another replica took the kernel's record over while this one launched (its deadline had passed)."""

    status = 409


class KernelOperations:
    """The claimed operations on one kernel (see the module docstring)."""

    def __init__(self, *, identity: str, kernels: dict[str, Kernel], pods: KernelPods, records: RecordStore,
                 admissions: Admissions, follower: RecordFollower, settings: KernelSettings,
                 pauses: RestartPauses, telemetry: KernelTelemetry | None = None) -> None:
        self.identity = identity
        self._telemetry = telemetry or KernelTelemetry()
        self._kernels = kernels
        self._pods = pods
        self._records = records
        self._admissions = admissions
        self._follower = follower
        self._settings = settings
        self._pauses = pauses

    # ------------------------------------------------------------------ restart

    async def restart(self, kernel: Kernel) -> Kernel:
        """A client's restart: claim, stop the pod (asking the kernel first), relaunch, record it running."""
        while True:
            async with kernel.lock:
                record = await self._current(kernel)
                if record.phase is Phase.RUNNING or (self._mine(record) and record.phase is Phase.RESTARTING):
                    deadline = self._launch_deadline(kernel, extra=self._settings.shutdown_wait_time + STOP_BOUND_SECONDS)
                    if await self._claim(kernel, record, Phase.RESTARTING, deadline, kind=RestartKind.CLIENT,
                                         restart_count=0) is None:
                        continue
                    log.info("restarting kernel %s", kernel.id)
                    self._telemetry.restarting(kernel)
                    kernel.set_state(RESTARTING)
                    kernel.restart_count = 0
                    await self._relaunch_or_give_up(kernel, 0, "The kernel could not be restarted.")
                    return kernel
                waited_on = record
            outcome = await self._await_other(kernel, waited_on)
            if waited_on.phase is Phase.RESTARTING and outcome is not None and outcome.phase is Phase.RUNNING:
                await self._follower.apply(kernel.id)
                return kernel  # another replica's restart of the same kernel: its result is ours

    async def _relaunch_or_give_up(self, kernel: Kernel, restart_count: int, failure: str) -> None:
        """Stop the kernel's pod (asking it first), launch it again and record it running; a kernel that cannot be
        relaunched is given up.

        Cancelled (the gateway stops), it hands the restart back to the lease holder instead.
        """
        try:
            await self._pods.stop(kernel, ask_kernel=True, restart=True)
            await self._pods.launch(kernel, _placement(kernel), first=False,
                                    answer_by=answer_by(kernel.record, self._settings.deadline_grace))
            await self.recorded_running(kernel, restart_count)
        except LostClaim:
            await self._pods.let_go(kernel)
            raise
        except asyncio.CancelledError:
            await shielded(self._hand_back(kernel))
            raise
        except BaseException as error:
            await self.give_up(kernel, getattr(error, "message", failure))
            raise

    # ------------------------------------------------------------------ shutdown

    async def shutdown(self, kernel: Kernel) -> None:
        """Claim ``terminating``, ask the kernel to stop, delete its pod and what was created for it, then its record."""
        while True:
            async with kernel.lock:
                record = self._records.get(kernel.id)
                if record is None:
                    if kernel.record is not None:
                        await self._follower.gone(kernel, "")
                    return
                if not kernel.listed and kernel.record is not None:
                    return
                if record.phase is Phase.RUNNING or self._mine(record):
                    deadline = utcnow() + timedelta(seconds=self._settings.shutdown_wait_time + STOP_BOUND_SECONDS
                                                    + self._settings.deadline_grace)
                    if await self._claim(kernel, record, Phase.TERMINATING, deadline) is None:
                        continue
                    log.info("shutting down kernel %s", kernel.id)
                    kernel.set_state(TERMINATING)
                    stopped_here = kernel.running is not None  # else its pod is known only by name
                    try:
                        await self._pods.stop(kernel, ask_kernel=True, restart=False)
                    finally:
                        await self.bury(kernel, verify=not stopped_here)
                    return
                waited_on = record
            await self._await_other(kernel, waited_on)

    async def bury(self, kernel: Kernel, reason: str = "", *, verify: bool = False) -> None:
        """The kernel is over: its pod and placement deleted, its admission released, its record deleted, dead here.

        Called with the kernel's lock held and its record claimed (``terminating``) by this replica.
        The record goes last: while it exists, the lease holder can finish what a replica dying
        meanwhile left (a record that cannot be deleted now stays ``terminating`` for it).  So it
        goes only once nothing else of the kernel is left: when a deletion failed (the API refused
        it every time), the record stays ``terminating``, its deadline moved to ``deadline_grace``
        from now, past which the lease holder's collection (:mod:`gateway.kernels.collect`)
        deletes the rest, then the record.  Either way the kernel is over for its clients.
        """
        released = await self._pods.release(kernel, verify=verify)
        await self._admissions.release(kernel.id)
        if released:
            try:
                await self._records.delete(kernel.id)
            except (RecordUnavailable, ClusterError) as error:
                log.error("kernel %s: its record could not be deleted (%s); the lease holder will", kernel.id, error)
        else:
            await self.leave_to_lease_holder(kernel)
        await self._follower.gone(kernel, reason)

    async def leave_to_lease_holder(self, kernel: Kernel) -> None:
        """Keep the kernel's record, claimed ``terminating``, due for the lease holder ``deadline_grace`` from now.

        Called when deleting what the cluster holds for the kernel failed and its record is all that
        leads back to it: by :meth:`bury` (the record is ``terminating`` already) and by the kernel
        service when undoing a first start (the record is ``launching``).  A record another replica
        claimed meanwhile is left as it is.
        """
        deadline = utcnow() + timedelta(seconds=self._settings.deadline_grace)

        def due(record: KernelRecord) -> KernelRecord | None:
            if not self._mine(record) or record.phase not in (Phase.LAUNCHING, Phase.TERMINATING):
                return None
            return claimed(record, Phase.TERMINATING, actor=self.identity, now=utcnow(), deadline=deadline)

        try:
            await asyncio.wait_for(self._records.modify(kernel.id, due), STOP_BOUND_SECONDS)
        except (RecordUnavailable, ClusterError, asyncio.TimeoutError) as error:
            deadline = kernel.record.launch_deadline if kernel.record else deadline
            log.warning("kernel %s: its record's deadline could not be moved (%s)", kernel.id,
                        error or type(error).__name__)
        log.warning("kernel %s: not everything it held in the cluster could be deleted; its record stays terminating "
                    "and the lease holder will finish after %s", kernel.id, deadline.isoformat(timespec="seconds"))

    async def give_up(self, kernel: Kernel, reason: str) -> None:
        """End a kernel that cannot be (re)launched: claim ``terminating`` and bury it with ``reason``.

        Called with the lock held.  If another replica holds the record by now, it is theirs.
        """
        for _ in range(3):
            record = self._records.get(kernel.id)
            if record is None:
                await self._follower.gone(kernel, reason)
                return
            if not (record.phase is Phase.RUNNING or self._mine(record)):
                return
            deadline = utcnow() + timedelta(seconds=STOP_BOUND_SECONDS + self._settings.deadline_grace)
            if await self._claim(kernel, record, Phase.TERMINATING, deadline) is not None:
                await self.bury(kernel, reason, verify=kernel.running is None)
                return

    # ------------------------------------------------------------------ the lease holder's

    async def autorestart(self, kernel: Kernel, dead_pod_uid: str) -> None:
        """The kernel's recorded pod died: relaunch it, up to ``restart_limit`` times in a row, else give it up.

        Called by the lease holder's auto-restart.  A record that no longer names that pod as
        running (restarted, shut down, or claimed by another replica meanwhile) is left alone.
        While the API does not take the record's writes, this is tried again after a pause: no
        other death will come to restart the kernel (once claimed, the lease holder's collection
        finishes a restart that could not be recorded).
        """
        backoff = Backoff(base=CLAIM_RETRY_SECONDS, cap=CLAIM_RETRY_CAP_SECONDS)
        while True:
            try:
                async with kernel.lock:
                    record = self._records.get(kernel.id)
                    if (record is None or record.phase is not Phase.RUNNING or record.pod is None
                            or record.pod.uid != dead_pod_uid):
                        break
                    count = record.restart_count
                    if (utcnow() - record.launched_at).total_seconds() > STABLE_START_SECONDS:
                        count = 0
                    await self._autorestart_from(kernel, record, count)
                    break
            except RecordUnavailable as error:
                delay = backoff.fail()
                log.warning("kernel %s: %s; trying its restart again in %.1fs", kernel.id, error.message, delay)
                await asyncio.sleep(delay)  # a back-off before asking the API again, not a wait for a state
        await self._follower.apply(kernel.id)

    async def take_over(self, kernel: Kernel) -> None:
        """Finish what a replica left half-done past its record's deadline (called by the lease holder's collection).

        ``launching``: the launch is undone (everything it may have created, its record, its
        admission); ``restarting``: the kernel is relaunched (counting as an automatic restart);
        ``terminating``: the shutdown is finished.
        """
        try:
            await self._take_over(kernel)
        finally:
            await self._follower.apply(kernel.id)

    async def _take_over(self, kernel: Kernel) -> None:
        async with kernel.lock:
            record = self._records.get(kernel.id)
            if record is None or record.phase is Phase.RUNNING or record.launch_deadline > utcnow():
                return
            log.warning("kernel %s: %s by %s ran past its deadline; taking it over", kernel.id, record.phase.value,
                        record.actor or "a replica")
            if record.phase is Phase.RESTARTING:
                await self._autorestart_from(kernel, record, record.restart_count)
                return
            deadline = utcnow() + timedelta(seconds=STOP_BOUND_SECONDS + self._settings.deadline_grace)
            if await self._claim(kernel, record, Phase.TERMINATING, deadline) is None:
                return
            if kernel.listed and kernel.state != TERMINATING:
                kernel.set_state(TERMINATING)
            await self.bury(kernel, verify=True)

    async def _autorestart_from(self, kernel: Kernel, record: KernelRecord, count: int) -> None:
        """Relaunch the kernel, counting from ``count`` restarts in a row; a failed relaunch is tried again after
        a pause (:class:`~gateway.kernels.restarts.RestartPauses`) until the limit, then the kernel is given up
        with the last failure as its reason."""
        limit = self._settings.restart_limit
        backoff = self._pauses.backoff()
        failure = ""
        while True:
            count += 1
            if count > limit:
                log.error("kernel %s: its pod died and %d restarts did not keep it up; giving up%s", kernel.id, limit,
                          f" ({failure})" if failure else "")
                self._telemetry.given_up(kernel, f"its pod died and {limit} restarts did not keep it up")
                await self.give_up(kernel, f"The kernel died and could not be restarted: {failure}" if failure
                                   else f"The kernel died and was restarted {limit} times.")
                return
            pause = backoff.fail() if failure else 0.0
            deadline = self._launch_deadline(kernel, extra=STOP_BOUND_SECONDS + pause)
            if await self._claim(kernel, record, Phase.RESTARTING, deadline, kind=RestartKind.AUTOMATIC,
                                 restart_count=count) is None:
                return  # another replica acted first; what is left to do is derived again from the records
            log.warning("kernel %s: its pod died; restarting it (%d of %d)", kernel.id, count, limit)
            self._telemetry.restarting(kernel, automatic=True, count=count, limit=limit)
            if kernel.state in _UP:
                kernel.set_state(AUTORESTARTING)
            try:
                await self._pods.stop(kernel, ask_kernel=False, restart=True)
                if pause:
                    log.info("kernel %s: relaunching it in %.1fs", kernel.id, pause)
                    await self._pauses.sleep(pause)
                await self._pods.launch(kernel, _placement(kernel), first=False,
                                    answer_by=answer_by(kernel.record, self._settings.deadline_grace))
                await self.recorded_running(kernel, count)
                return
            except LostClaim as error:
                log.warning("kernel %s: %s", kernel.id, error.message)
                await self._pods.let_go(kernel)
                return
            except KernelLaunchFailed as error:
                log.warning("kernel %s: relaunch failed: %s", kernel.id, error.message)
                failure = error.message
            except asyncio.CancelledError:
                await shielded(self._hand_back(kernel))
                raise
            fresh = self._records.get(kernel.id)
            if fresh is None or not self._mine(fresh):
                return
            record = fresh

    # ------------------------------------------------------------------ records

    async def recorded_running(self, kernel: Kernel, restart_count: int) -> None:
        """Record the (re)launched kernel ``running`` on its new pod; :class:`LostClaim` if another replica took it."""
        launched = kernel.running
        assert launched is not None

        def change(record: KernelRecord) -> KernelRecord:
            if record.actor != self.identity or record.phase not in (Phase.LAUNCHING, Phase.RESTARTING):
                raise LostClaim(f"Kernel {kernel.id} was taken over by another gateway replica during its launch.")
            return running(record, launched, actor=self.identity, now=utcnow(), restart_count=restart_count)

        written = await self._records.modify(kernel.id, change)
        if written is None:
            raise LostClaim(f"Kernel {kernel.id} was shut down by another gateway replica during its launch.")
        kernel.record = written
        kernel.restart_count = restart_count

    async def _claim(self, kernel: Kernel, record: KernelRecord, phase: Phase, deadline: datetime, *,
                     kind: RestartKind | None = None, restart_count: int | None = None) -> KernelRecord | None:
        """Replace ``record`` with ``phase`` claimed by this replica; ``None`` when another replica came first."""
        try:
            written = await self._records.replace(claimed(record, phase, actor=self.identity, now=utcnow(),
                                                          deadline=deadline, kind=kind, restart_count=restart_count))
        except Conflict:
            await self._records.settle(kernel.id, record.resource_version)
            return None
        except NotFound:
            return None
        kernel.record = written
        return written

    async def _hand_back(self, kernel: Kernel) -> None:
        """A restart of this replica was cancelled (the gateway stops): let the lease holder relaunch it at once."""
        def now_due(record: KernelRecord) -> KernelRecord | None:
            if not self._mine(record) or record.phase is not Phase.RESTARTING:
                return None
            return claimed(record, record.phase, actor=self.identity, now=utcnow(), deadline=utcnow(),
                           kind=record.restart_kind)

        try:
            await asyncio.wait_for(self._records.modify(kernel.id, now_due), STOP_BOUND_SECONDS)
        except Exception as error:
            log.warning("kernel %s: could not hand its restart back (%s); its deadline stands", kernel.id, error)

    async def _current(self, kernel: Kernel) -> KernelRecord:
        """The kernel's record, for an operation about to act on it; 404 (and the kernel let go) when it is gone."""
        record = self._records.get(kernel.id)
        if record is None or self._kernels.get(kernel.id) is not kernel or not kernel.listed:
            if record is None and kernel.record is not None:
                await self._follower.gone(kernel, "")
            raise KernelNotFound(f"Kernel does not exist: {kernel.id}")
        return record

    async def _await_other(self, kernel: Kernel, record: KernelRecord) -> KernelRecord | None:
        """Wait until another replica's phase on the kernel ends (its record changes or goes), bounded by its deadline."""
        left = (record.launch_deadline - utcnow()).total_seconds()
        timeout = max(0.0, left) + 3 * self._settings.deadline_grace
        try:
            changed = await self._records.wait_for(
                kernel.id, lambda r: r is None or r.resource_version != record.resource_version, timeout)
        except asyncio.TimeoutError:
            raise KernelError(f"Kernel {kernel.id} is {record.phase.value} on another gateway replica, which did not "
                              "finish in time.", status=504) from None
        await self._follower.apply(kernel.id)
        return changed

    def _mine(self, record: KernelRecord) -> bool:
        """Whether this replica claimed the record's phase (and may carry on, or end it)."""
        return record.phase is not Phase.RUNNING and record.actor == self.identity

    def _launch_deadline(self, kernel: Kernel, extra: float = 0.0) -> datetime:
        return launch_deadline(utcnow(), kernel.request.timeout, self._settings.deadline_grace + extra)


def _placement(kernel: Kernel) -> Placement:
    """The placement a relaunch reuses: the kernel's, known from its first launch or its record."""
    if kernel.placement is None:
        raise KernelLaunchFailed(f"Kernel {kernel.id} has no known placement to relaunch it in.")
    return kernel.placement
