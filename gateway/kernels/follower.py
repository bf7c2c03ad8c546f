"""Every replica's kernels, kept as the records say: adopted, followed through restarts elsewhere, let go.

The kernel service starts one :class:`RecordFollower` once the records informer has synced.
It first adopts every record already in the cluster (so a gateway started after another was
killed serves that one's kernels at once), then applies each change of a record to the
:class:`~gateway.kernels.kernel.Kernel` this replica holds for it:

* a record this replica has no kernel for becomes one (**adopted**): its request rebuilt
  from the record and this replica's kernelspec of that name, and, once it runs, its pod
  followed and its iopub watched here too;
* ``restarting`` (a restart by another replica): the kernel here goes ``restarting`` (or
  ``autorestarting``) and lets go of the old pod; ``running`` again on a new pod: it goes
  ``starting``, then ``idle`` on the new pod.  A websocket bridge hears exactly those states
  and reconnects to the new pod, as it does after a restart done here;
* ``terminating``: the kernel goes ``terminating``; a **deleted** record: ``dead``, unlisted
  (bridges hear ``dead`` and close).

Applying is idempotent and reads the freshest record (:meth:`RecordStore.get`), whichever
event woke it.  While an operation of this replica holds a kernel's lock, that operation
owns the kernel's state: the follower leaves the kernel alone and the operation calls
:meth:`RecordFollower.apply` once it has let go of the lock, to catch up with anything
another replica wrote meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gateway.aio import OwnedTasks, cancel_and_wait
from gateway.cluster.informer import Subscription
from gateway.objects.record import KernelRecord, Phase, RestartKind
from gateway.observability.logs import kernel_logs
from gateway.provisioner.placement import placement_of

from .errors import KernelError
from .kernel import AUTORESTARTING, DEAD, RESTARTING, STARTING, TERMINATING, Kernel, KernelState
from .pods import KernelPods
from .recorded import request_of, running_of
from .records import RecordStore
from .specs import KernelSpecs

log = logging.getLogger("gateway.kernels.follower")

_UP = frozenset({KernelState.STARTING, KernelState.IDLE, KernelState.BUSY})

KernelHook = Callable[[Kernel], None]


class RecordFollower:
    """Applies the records to this replica's kernels (see the module docstring).

    ``kernels`` is the kernel service's table of every kernel this replica knows, changed here
    (adoptions, removals) and by the service's own starts.  ``on_adopted`` is called with each
    kernel the follower adds (the service hooks its activity write-back there).
    """

    def __init__(self, records: RecordStore, kernels: dict[str, Kernel], pods: KernelPods, specs: KernelSpecs,
                 *, on_adopted: KernelHook) -> None:
        self._records = records
        self._kernels = kernels
        self._pods = pods
        self._specs = specs
        self._on_adopted = on_adopted
        self._tasks = OwnedTasks("record follower")
        self._task: asyncio.Task[None] | None = None
        self._dirty: set[str] = set()
        """Kernels whose record changed since this replica last applied it."""

    async def start(self) -> None:
        """Adopt every record in the cache, then follow changes (called by the kernel service's start)."""
        subscription = self._records.subscribe(replay=False)
        for record in self._records.all():
            await self.apply(record.kernel_id)
        self._task = self._tasks.spawn(self._follow(subscription), "follow kernel records")
        log.info("serving %d kernels recorded in the cluster", sum(1 for k in self._kernels.values() if k.listed))

    async def stop(self) -> None:
        """Stop following (called by the kernel service's stop)."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def _follow(self, subscription: Subscription) -> None:
        async with subscription as changes:
            async for event in changes:
                kernel_id = self._records.kernel_id_of(event.object)
                if kernel_id is None:
                    continue
                with kernel_logs(kernel_id):  # what following the record logs names the kernel
                    try:
                        await self.apply(kernel_id)
                    except Exception:
                        log.exception("applying the record of kernel %s failed", kernel_id)
        log.info("kernel records are no longer followed: the records informer stopped")

    async def apply(self, kernel_id: str) -> None:
        """Bring this replica's kernel in line with its freshest record (adopt, follow or let it go).

        Called for each record change, and by the kernel service after each operation it ran on
        the kernel.  Leaves alone a kernel whose lock is held (by an operation of this replica, or
        an apply under way): the kernel is marked, and the holder applies again once it lets go.
        """
        self._dirty.add(kernel_id)
        kernel = self._kernels.get(kernel_id)
        adopted = False
        if kernel is None:
            record = self._records.get(kernel_id)
            if record is None:
                self._dirty.discard(kernel_id)
                return
            kernel, adopted = await self._adopt(record)
        if kernel.lock.locked():
            return
        async with kernel.lock:
            while kernel_id in self._dirty:
                self._dirty.discard(kernel_id)
                record = self._records.get(kernel_id)
                if record is None:
                    # A kernel with no record yet is a start of this replica, before it writes one; an
                    # adopted kernel whose record went while it was being adopted is let go as well.
                    if kernel.record is not None or adopted:
                        await self.gone(kernel, "")
                    return
                await self._follow_record(kernel, record)

    async def gone(self, kernel: Kernel, reason: str) -> None:
        """The kernel's record is deleted: let go of its pod here, unlist it, mark it dead (``reason``, if any)."""
        await self._pods.let_go(kernel)
        if self._kernels.get(kernel.id) is kernel:
            del self._kernels[kernel.id]
        if kernel.state != DEAD:
            kernel.set_state(DEAD, reason=reason)
            log.info("kernel %s is gone%s", kernel.id, f" ({reason})" if reason else "")

    async def _adopt(self, record: KernelRecord) -> tuple[Kernel, bool]:
        """A kernel for a record this replica has none for (started by another replica, or before this one).

        Returns the kernel and whether it is new here: a start of this replica may have taken the
        id while the kernelspec was read, and then that start's kernel is the answer.
        """
        spec = None
        try:
            spec = (await self._specs.choose(record.kernelspec)).info
        except KernelError as error:
            log.warning("kernel %s uses kernelspec %s, which this gateway does not offer (%s): it is served "
                        "but cannot be relaunched here", record.kernel_id, record.kernelspec, error.message)
        existing = self._kernels.get(record.kernel_id)
        if existing is not None:  # a start of this replica took the id meanwhile
            return existing, False
        kernel = Kernel(request_of(record, spec))
        kernel.placement = placement_of(record.placement)
        kernel.last_activity = record.last_activity
        kernel.restart_count = record.restart_count
        self._kernels[kernel.id] = kernel
        self._on_adopted(kernel)
        if record.phase is not Phase.LAUNCHING:
            log.info("adopted kernel %s (%s) of %s, %s", kernel.id, kernel.name, kernel.username, record.phase.value)
        return kernel, True

    async def _follow_record(self, kernel: Kernel, record: KernelRecord) -> None:
        """Move the kernel to the state its record says, by the transitions its listeners expect."""
        previous, kernel.record = kernel.record, record
        kernel.restart_count = record.restart_count
        kernel.seen_active(record.last_activity)
        state = kernel.state
        if record.phase is Phase.RUNNING:
            target = running_of(record)
            if target is None:
                log.error("the record of kernel %s says running but names no pod", kernel.id)
                return
            if kernel.running is not None and kernel.running.pod_uid == target.pod_uid:
                return
            if state in _UP and kernel.running is not None:  # restarted elsewhere while we were not looking
                await self._pods.let_go(kernel)
                kernel.set_state(AUTORESTARTING if record.restart_count else RESTARTING)  # a client's resets the count
            if kernel.state in (RESTARTING, AUTORESTARTING):
                kernel.set_state(STARTING)
            if kernel.state != STARTING:
                log.warning("kernel %s is %s here but recorded running; left as it is", kernel.id, kernel.state)
                return
            await self._pods.adopt(kernel, target)
            if previous is None or previous.phase is Phase.LAUNCHING:  # first seen running: its own activity
                kernel.last_activity = record.last_activity
        elif record.phase is Phase.RESTARTING:
            if state in _UP:
                await self._pods.let_go(kernel)
                kernel.set_state(AUTORESTARTING if record.restart_kind is RestartKind.AUTOMATIC else RESTARTING)
        elif record.phase is Phase.TERMINATING and state not in (TERMINATING, DEAD):
            await self._pods.let_go(kernel)
            kernel.set_state(TERMINATING)
