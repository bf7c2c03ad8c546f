"""Nothing left behind: what dead replicas left half-done, collected by the replica holding the duties' Lease.

A replica that dies (SIGKILL, a node lost) may leave a kernel mid-launch, mid-restart or
mid-shutdown.  Each of those phases is claimed in the kernel's record with a deadline
(``launch_deadline``); once it has passed, the :class:`Collector` takes it over
(:meth:`~gateway.kernels.operations.KernelOperations.take_over`):

* a **launch** is undone: its pod, the namespace and role binding it may have created (each
  deleted only if labelled for the kernel), its record and its admission.  A launch in flight
  ends either recorded ``running`` (and served by every replica) or fully removed, never both
  and never neither, since both ends claim the same record;
* a **restart** is carried out again (an automatic restart, counted against the limit);
* a **shutdown** is finished.

It also deletes kernel pods of this gateway that have no record and are older than
``leftover_grace``, with their namespace when the gateway created it (labelled for the kernel:
the RoleBinding and the ServiceAccount in it go with it) and their admission.  Pods of another
gateway (another ``EG_NAMESPACE``, named in the pod's annotation) and namespaces not labelled for
the kernel are left alone.  It runs when this replica takes the duties over, at the earliest
deadline of the records in a phase, whenever a record changes (then looking only at the records
in a phase: a start or a shutdown costs it nothing that grows with the kernels served), and for
every record and pod at least every ``leftover_grace`` and when a pod without a record comes of
age; each run reads only the caches (records and pods), so it makes no API call unless there is
something to delete.

What a launch cut short by its gateway's death leaves always includes its record (written
before anything else, deleted last), so the first rule removes all of it: pod, namespace,
RoleBinding, ServiceAccount, record and admission.  The second rule covers kernels whose record
went first (deleted by hand).  :func:`abandoned_launch_taken_over_by` says by when the first
rule acts.

A deletion the API refuses leaves what leads back to the kernel in place: a shutdown, or a
failed first start, whose namespace could not be deleted keeps the kernel's record
``terminating`` (:meth:`~gateway.kernels.operations.KernelOperations.leave_to_lease_holder`),
and a record or a pod is removed only after everything else of its kernel.  Each kernel whose collection failed is tried again
on a later run, after a pause that doubles with each failure in a row (from ``deadline_grace``
up to ``leftover_grace``, :class:`RetryPauses`), until nothing of it is left.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timezone

from gateway.aio import Backoff, OwnedTasks, cancel_and_wait
from gateway.cluster.informer import Subscription
from gateway.cluster.lease import LeaseSettings
from gateway.objects.labels import KERNEL_ID_LABEL
from gateway.objects.record import Phase
from gateway.observability.logs import kernel_logs
from gateway.provisioner.base import KernelProvisioner
from gateway.provisioner.model import Placement

from .admissions import Admissions
from .kernel import Kernel
from .operations import KernelOperations
from .recorded import launch_deadline
from .records import RecordStore
from .settings import KernelSettings

log = logging.getLogger("gateway.kernels.collect")

MARGIN_SECONDS = 0.05
"""How long after a deadline the collection wakes (so that the deadline has passed by then)."""


def abandoned_launch_taken_over_by(started: float, died: float, *, launch_timeout: float, deadline_grace: float,
                                   lease: LeaseSettings) -> float:
    """When, at the latest, the lease holder takes over a launch begun at ``started`` whose gateway died at ``died``.

    Both moments are seconds on one clock; so is the answer.  The launch's record carries its
    deadline, ``launch_timeout`` plus ``deadline_grace`` after it began (:func:`launch_deadline`),
    at which the holder undoes it (unless the launch was recorded ``running`` first: then it is
    adopted).  If the gateway that died held the duties' Lease, another replica holds it within
    the lease duration of its last renewal plus one retry period, and collects at once.  The
    later of the two, and the collection's wake-up margin, bound it.  Used by the README's
    promise and by the tests that hold the gateway to it; deleting what the launch created
    (a namespace finalizing) takes a little longer.
    """
    deadline = launch_deadline(datetime.fromtimestamp(started, timezone.utc), launch_timeout, deadline_grace)
    takeover = died + lease.duration + lease.retry_period
    return max(deadline.timestamp(), takeover) + MARGIN_SECONDS


class RetryPauses:
    """The kernels whose collection failed, each paused before its next attempt (a jittered back-off per kernel).

    Kept by the :class:`Collector` for as long as it collects; a lease holder that takes over
    starts afresh, at once, as it would anyway.
    """

    def __init__(self, base: float, cap: float) -> None:
        self._base = base
        self._cap = cap
        self._paused: dict[str, tuple[Backoff, float]] = {}
        """Kernel id -> its back-off, and the ``time.monotonic()`` before which it is not tried again."""

    def left(self, kernel_id: str) -> float:
        """Seconds until the kernel may be tried again (0: now)."""
        paused = self._paused.get(kernel_id)
        return max(0.0, paused[1] - time.monotonic()) if paused else 0.0

    def failed(self, kernel_id: str) -> float:
        """The kernel's collection failed once more: pause it; how long (seconds)."""
        backoff, _ = self._paused.get(kernel_id) or (Backoff(base=self._base, cap=self._cap), 0.0)
        delay = backoff.fail()
        self._paused[kernel_id] = (backoff, time.monotonic() + delay)
        return delay

    def done(self, kernel_id: str) -> None:
        """Nothing of the kernel is left to collect."""
        self._paused.pop(kernel_id, None)


class Collector:
    """The lease holder's collection of leftovers (see the module docstring).

    Made by the kernel service over its table of kernels (read only), the records, the
    admissions, the operations and its tasks (take-overs run as the service's operations).
    """

    def __init__(self, provisioner: KernelProvisioner, kernels: Mapping[str, Kernel], records: RecordStore,
                 admissions: Admissions, operations: KernelOperations, settings: KernelSettings, *,
                 tasks: OwnedTasks) -> None:
        self._provisioner = provisioner
        self._kernels = kernels
        self._records = records
        self._admissions = admissions
        self._operations = operations
        self._settings = settings
        self._tasks = tasks
        self._taking_over: set[str] = set()
        self._pauses = RetryPauses(settings.deadline_grace, max(settings.leftover_grace, settings.deadline_grace))
        self._in_phase: set[str] = set()
        """Kernels whose record is in a phase (not ``running``): the only ones with a deadline to keep."""
        self._changed: set[str] = set()
        """Kernels whose record changed since the last run looked (or whose take-over ended)."""
        self._woken = asyncio.Event()
        self._sweep_due = 0.0
        """``time.monotonic()`` of the next full run: every record, every kernel pod."""

    async def run(self) -> None:
        """Collect now, then at each deadline, on each record change, and every ``leftover_grace`` (until cancelled).

        A run after a record change looks at the records in a phase only; the full run (every
        record and every kernel pod, so linear in the kernels) comes when this replica takes the
        duties, each ``leftover_grace``, and when a pod without a record comes of age: starts and
        shutdowns cost the lease holder nothing that grows with the kernels it serves.
        """
        self._sweep_due = 0.0
        subscription = self._records.subscribe(replay=False)
        relay = asyncio.create_task(self._relay(subscription), name="collector: record changes")
        try:
            while True:
                self._woken.clear()
                delay = await self.collect_once()
                try:
                    async with asyncio.timeout(delay):
                        await self._woken.wait()
                except TimeoutError:
                    pass
        finally:
            subscription.close()
            await cancel_and_wait(relay)

    async def _relay(self, subscription: Subscription) -> None:
        """Wake the collection at every change of a record (a phase begun, ended, or handed back)."""
        async with subscription as changes:
            async for change in changes:
                kernel_id = self._records.kernel_id_of(change.object)
                if kernel_id is not None:
                    self._changed.add(kernel_id)
                    self._woken.set()

    async def collect_once(self) -> float:
        """Take over what is past its deadline, delete old pods without a record; seconds until the next run."""
        now = datetime.now(timezone.utc)
        if time.monotonic() >= self._sweep_due:
            self._changed.clear()
            self._in_phase = {record.kernel_id for record in self._records.all() if record.phase is not Phase.RUNNING}
            self._sweep_due = time.monotonic() + await self._collect_pods_without_record(now)
        else:
            changed, self._changed = self._changed, set()
            self._in_phase |= changed  # those now running or gone drop out below
        soonest = self._sweep_due - time.monotonic()
        for kernel_id in list(self._in_phase):
            record = self._records.get(kernel_id)
            if record is None or record.phase is Phase.RUNNING:
                self._in_phase.discard(kernel_id)
                continue
            left = max((record.launch_deadline - now).total_seconds(), self._pauses.left(kernel_id))
            if left > 0:
                soonest = min(soonest, left + MARGIN_SECONDS)
                continue
            kernel = self._kernels.get(kernel_id)
            if kernel is not None and kernel_id not in self._taking_over:
                self._taking_over.add(kernel_id)
                with kernel_logs(kernel_id):  # the take-over's log lines name the kernel
                    self._tasks.spawn(self._take_over(kernel), f"take over kernel {kernel_id}")
        return max(0.0, soonest)

    async def _take_over(self, kernel: Kernel) -> None:
        """Take the kernel's phase over; if it failed, or left the record this replica's to finish, pause the kernel."""
        failed = False
        try:
            await self._operations.take_over(kernel)
        except Exception as error:
            log.error("taking over kernel %s failed: %s", kernel.id, error)
            failed = True
        finally:
            self._taking_over.discard(kernel.id)
            self._changed.add(kernel.id)  # its next deadline, or its pause, is the next run's to keep
            self._woken.set()
        record = self._records.get(kernel.id)
        if record is None or record.phase is Phase.RUNNING or not (failed or record.actor == self._operations.identity):
            self._pauses.done(kernel.id)
            return
        delay = self._pauses.failed(kernel.id)
        log.warning("kernel %s: not everything of it could be deleted yet; trying again in %.1fs at the earliest",
                    kernel.id, delay)

    async def _collect_pods_without_record(self, now: datetime) -> float:
        """Delete the kernel pods older than ``leftover_grace`` without a record; seconds until the next comes of age."""
        grace = self._settings.leftover_grace
        soonest = grace
        for pod in self._provisioner.kernel_pods():
            meta = pod.get("metadata") or {}
            kernel_id = (meta.get("labels") or {}).get(KERNEL_ID_LABEL)
            if not isinstance(kernel_id, str) or self._records.get(kernel_id) is not None or kernel_id in self._kernels:
                continue
            wait = max(grace - _age(meta.get("creationTimestamp"), now), self._pauses.left(kernel_id))
            if wait > 0:
                soonest = min(soonest, wait + MARGIN_SECONDS)
                continue
            namespace, name = str(meta.get("namespace")), str(meta.get("name"))
            with kernel_logs(kernel_id):  # the collection's log lines name the kernel
                log.warning("kernel pod %s/%s has no kernel record; deleting it and what was created for it",
                            namespace, name)
                # In a namespace of its own (named like the pod) the namespace goes too, if labelled for the kernel.
                placement = Placement(namespace, "default", owns_namespace=namespace == name, pod_name=name)
                if await self._provisioner.collect(kernel_id, placement):
                    self._pauses.done(kernel_id)
                else:  # the pod stays, and leads a later run back to what is left
                    delay = self._pauses.failed(kernel_id)
                    soonest = min(soonest, delay + MARGIN_SECONDS)
                    log.warning("kernel pod %s/%s: not everything could be deleted; trying again in %.1fs at the "
                                "earliest", namespace, name, delay)
            await self._admissions.release(kernel_id)
        return soonest


def _age(created: object, now: datetime) -> float:
    if not isinstance(created, str):
        return 0.0
    try:
        moment = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return 0.0
    return (now - moment).total_seconds()
