"""Auto-restart: a kernel whose pod died on its own gets a new pod, with the same id and placement, once.

A pod dies on its own when its kernel process crashed, it was OOM-killed, or someone deleted
it.  The kernel is then relaunched, up to ``restart_limit`` times in a row; past that it is
given up: marked dead and everything it held released.  Enterprise Gateway instead shuts a
kernel with no connected client down when its pod dies; here the kernel is restarted
regardless, so a user who reconnects later still has a kernel under the same id (its
in-memory state is lost either way).

Only the replica holding the duties' Lease restarts kernels (``gateway.kernels.duties`` runs
:meth:`AutoRestarter.run` while it leads), and each restart claims the kernel's record first
(``running`` on the dead pod -> ``restarting``, under optimistic concurrency,
:meth:`~gateway.kernels.operations.KernelOperations.autorestart`), so a death is restarted
exactly once even when the holder changes meanwhile.  How a death becomes a restart:

1. On taking the duties over, the holder derives what to do from the cluster: every kernel
   recorded ``running`` whose pod the informer shows ended, or does not show at all and the
   API confirms gone, is restarted.
2. Then it follows the provisioner's :meth:`~gateway.provisioner.base.KernelProvisioner.deaths`:
   the pods of every kernel this replica follows (launched or adopted) that die.
3. One auto-restart task per kernel is queued in the kernel service's tasks; a death reported
   while the kernel's auto-restart is queued or running is left to that one.  The task waits
   for the kernel's lock; if the record no longer names the dead pod as running (a restart or
   shutdown came first, here or on another replica), there is nothing left to do.

A relaunch that fails (the kernel's namespace is still being deleted, the API server is away)
is tried again after a pause drawn by :class:`RestartPauses`: jittered and doubling with each
failure in a row, so that the restarts are not all spent at once on a cause that takes seconds
to pass, and kernels failing together do not retry in step.  The kernel's lock stays held
meanwhile: a shutdown of the kernel asked for during a pause waits for the attempt under way.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping

from gateway.aio import Backoff, OwnedTasks, cancel_and_wait
from gateway.cluster.informer import InformerStopped
from gateway.objects.record import Phase
from gateway.observability.logs import kernel_extra, kernel_logs
from gateway.provisioner.base import KernelProvisioner
from gateway.provisioner.leftovers import PodLife
from gateway.provisioner.placement import placement_of

from .kernel import Kernel
from .operations import KernelOperations
from .records import RecordStore

log = logging.getLogger("gateway.kernels")

FOLLOW_RETRY_SECONDS = 1.0
"""How long to wait before following deaths again after an unexpected error."""


class RestartPauses:
    """The pauses between the failed relaunches of one auto-restart, and how they are waited.

    Made once by the kernel service from ``restart_backoff`` (the first pause is between half of
    it and all of it) and ``restart_backoff_cap`` (no pause is longer); the auto-restart
    (:meth:`~gateway.kernels.operations.KernelOperations.autorestart`) takes a :meth:`backoff` per
    kernel it restarts and awaits :meth:`sleep` with each delay it draws.  ``sleep`` may be
    replaced (tests count the pauses without waiting them out).
    """

    def __init__(self, base: float, cap: float, *, rng: random.Random | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.base = base
        self.cap = cap
        self.sleep = sleep
        self._rng = rng or random.Random()

    def backoff(self) -> Backoff:
        """A fresh back-off for one auto-restart: its n-th failed relaunch draws the n-th pause."""
        return Backoff(self.base, self.cap, self._rng)


class AutoRestarter:
    """Restarts the kernels whose pod died, while this replica leads (see the module docstring).

    Made by the kernel service with its table of kernels (read only here), the records, the
    operations, and its tasks (so that its stop cancels auto-restarts in progress with every
    other operation; losing the lead does not: a claimed restart is finished).
    """

    def __init__(self, provisioner: KernelProvisioner, kernels: Mapping[str, Kernel], records: RecordStore,
                 operations: KernelOperations, *, tasks: OwnedTasks) -> None:
        self._provisioner = provisioner
        self._kernels = kernels
        self._records = records
        self._operations = operations
        self._tasks = tasks
        self._restarting: set[str] = set()
        """Ids of kernels whose auto-restart is queued or running."""

    async def run(self) -> None:
        """Restart what died before this replica led, then every death as it happens (until cancelled)."""
        follower = asyncio.create_task(self._follow_deaths(), name="follow pod deaths")
        try:
            await asyncio.sleep(0)  # the follower subscribes first, so no death falls between looking and following
            await self._restart_the_dead()
            await follower
        finally:
            await cancel_and_wait(follower)

    async def _follow_deaths(self) -> None:
        while True:
            try:
                async for kernel_id in self._provisioner.deaths():
                    self._on_death(kernel_id)
            except InformerStopped:
                log.info("pod deaths are no longer followed: the pod informer stopped")
                return
            except Exception:
                log.exception("following pod deaths failed; following them again in %ss", FOLLOW_RETRY_SECONDS)
                await asyncio.sleep(FOLLOW_RETRY_SECONDS)
            else:
                return

    async def _restart_the_dead(self) -> None:
        """Every kernel recorded running on a pod that ended, or is gone (confirmed by one read), is restarted."""
        for record in self._records.all():
            if record.phase is not Phase.RUNNING or record.pod is None:
                continue
            placement = placement_of(record.placement)
            life = self._provisioner.pod_life(placement, record.pod.uid)
            if life is PodLife.ALIVE:
                continue
            if life is PodLife.UNSEEN and await self._provisioner.pod_exists(placement, record.pod.uid):
                continue
            log.warning("kernel %s: its pod %s/%s is gone", record.kernel_id, placement.namespace, placement.pod_name,
                        extra=kernel_extra(record.kernel_id))
            self._queue(record.kernel_id, record.pod.uid)

    def _on_death(self, kernel_id: str) -> None:
        """The kernel's pod died: queue its auto-restart, unless one is queued or running already."""
        kernel = self._kernels.get(kernel_id)
        if kernel is None or kernel.running is None:
            return
        self._queue(kernel_id, kernel.running.pod_uid)

    def _queue(self, kernel_id: str, dead_pod_uid: str) -> None:
        kernel = self._kernels.get(kernel_id)
        if kernel is None or kernel_id in self._restarting:
            return
        self._restarting.add(kernel_id)
        with kernel_logs(kernel_id):  # the auto-restart's log lines name the kernel
            self._tasks.spawn(self._restart(kernel, dead_pod_uid), f"autorestart {kernel_id}")

    async def _restart(self, kernel: Kernel, dead_pod_uid: str) -> None:
        try:
            await self._operations.autorestart(kernel, dead_pod_uid)
        except Exception:
            # Never an unlogged death of the task: the lease holder's collection finishes what is left.
            log.exception("the auto-restart of kernel %s failed", kernel.id)
        finally:
            self._restarting.discard(kernel.id)
