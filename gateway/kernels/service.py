"""The kernel service: start, restart, interrupt and shut down kernels running as pods, on any replica.

One :class:`KernelService` per gateway replica, built by ``gateway.app`` over a provisioner
(:class:`~gateway.provisioner.base.KernelProvisioner`), the kernelspecs and what the replicas
share (:class:`Replica`: the kernel records, the admissions, the duties' Lease), and called by
the HTTP layer.  Kernels live in the cluster, not in a gateway process: each has a record
(:mod:`gateway.objects.record`) from which every replica serves it, whichever launched it
(:mod:`gateway.kernels.follower`), so any replica lists, restarts, interrupts, shuts down and
relays to any kernel, and a replica started after another died serves that one's kernels.

It validates start requests (:mod:`gateway.kernels.env`, kernelspec users, the limits counted
across replicas by :mod:`gateway.kernels.admissions`) and runs each operation on a kernel,
claimed through its record (:mod:`gateway.kernels.operations`) from the pod steps of
:mod:`gateway.kernels.pods`.  The replica holding the Lease also restarts kernels whose pod
died, culls idle kernels and collects what dead replicas left (:mod:`gateway.kernels.duties`).

Lifecycle is event-driven: a kernel's execution state and activity come from its iopub
messages, pod deaths from the pod informer, other replicas' doings from the records informer.
Nothing polls the cluster.

Concurrency, in four rules:

* Start requests are admitted one at a time per replica, in the order they arrive; across
  replicas the admissions ConfigMap decides, first come, first served.
* Every operation that launches or stops a kernel's pod claims its record and, within the
  replica, holds the kernel's ``lock``, so concurrent restarts and shutdowns of one kernel run
  one after the other (or wait for the other replica's) and a kernel never has two pods.
* A start, restart or shutdown runs as a task the service owns: the caller's cancellation
  (a client gone away) ends the caller's wait, never the operation, which would otherwise
  leave a kernel half-launched or half-stopped (:meth:`KernelService._run_owned`).
* Only :meth:`KernelService.stop` cancels operations, and clean-up they started still runs to
  its end (:func:`gateway.aio.shielded`).  On the embedded cluster every kernel is then shut
  down; on a real cluster the kernels stay, served by the other replicas or the next gateway.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import signal
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

from gateway.aio import OwnedTasks, cancel_and_wait, shielded
from gateway.cluster.interface import AlreadyExists
from gateway.cluster.lease import LeaseElector
from gateway.objects.record import RecordPlacement
from gateway.observability.logs import about_kernel, kernel_logs, tag_task
from gateway.provisioner.base import KernelProvisioner
from gateway.provisioner.comm import CommError
from gateway.provisioner.errors import LaunchError
from gateway.provisioner.model import LaunchRequest, Placement

from .activity import record
from .activitywrite import ActivityWriter
from .admissions import Admissions
from .channels import ChannelTimeout, KernelChannels, gateway_session
from .collect import Collector
from .culling import Culler
from .duties import Duties
from .env import kernel_environment
from .errors import (
    GatewayStopping,
    KernelConflict,
    KernelError,
    KernelLaunchFailed,
    KernelLimitReached,
    KernelNotFound,
    shown,
)
from .follower import RecordFollower
from .kernel import AUTORESTARTING, DEAD, RESTARTING, TERMINATING, Kernel
from .operations import KernelOperations
from .pods import KernelPods
from .presence import Presence
from .recorded import answer_by, launching
from .records import RecordStore
from .restarts import AutoRestarter, RestartPauses
from .settings import KernelSettings
from .specs import KernelSpecs
from .telemetry import KernelTelemetry

log = logging.getLogger("gateway.kernels")
T = TypeVar("T")


@dataclass(frozen=True)
class Replica:
    """What this gateway replica shares with the others, built by the composition root."""

    identity: str
    """This replica's name (its pod's), as it appears in the Lease and in the records it claims."""
    records: RecordStore
    admissions: Admissions
    lease: LeaseElector


class KernelService:
    """Every kernel of the cluster as this replica serves it, and every operation on them (see the module docstring)."""

    def __init__(self, provisioner: KernelProvisioner, specs: KernelSpecs, settings: KernelSettings,
                 replica: Replica, *, telemetry: KernelTelemetry | None = None) -> None:
        self.provisioner = provisioner
        self.telemetry = telemetry or KernelTelemetry()
        """Metrics and events of the kernels' lives (:mod:`gateway.kernels.telemetry`)."""
        self.specs = specs
        self.settings = settings
        self.replica = replica
        self._kernels: dict[str, Kernel] = {}
        """Every kernel this replica knows: recorded (by any replica), or being started here."""
        self._operations = OwnedTasks("kernel service")
        """Starts, restarts, shutdowns, auto-restarts and take-overs in progress."""
        self._admission = asyncio.Lock()
        """Held while a start request is checked and admitted: requests are admitted one at a time, in order."""
        self._stopping = False
        """:meth:`stop` has begun: starts are refused with :class:`GatewayStopping` (503)."""
        self._records = replica.records
        self._pods = KernelPods(provisioner, settings, self.telemetry)
        self._activity = ActivityWriter(replica.records, settings.activity_write_interval)
        self._presence = Presence(replica.records, replica.identity, settings)
        self._follower = RecordFollower(replica.records, self._kernels, self._pods, specs, on_adopted=self._hook)
        self.restart_pauses = RestartPauses(settings.restart_backoff, settings.restart_backoff_cap)
        """The pauses between an auto-restart's failed relaunches (its ``sleep`` may be replaced by tests)."""
        self._ops = KernelOperations(identity=replica.identity, kernels=self._kernels, pods=self._pods,
                                     records=replica.records, admissions=replica.admissions,
                                     follower=self._follower, settings=settings, pauses=self.restart_pauses,
                                     telemetry=self.telemetry)
        self._culler = Culler(settings, self.list, self.shutdown, replica.records.get, telemetry=self.telemetry)
        restarter = AutoRestarter(provisioner, self._kernels, replica.records, self._ops, tasks=self._operations)
        collector = Collector(provisioner, self._kernels, replica.records, replica.admissions, self._ops, settings,
                              tasks=self._operations)
        self.duties = Duties(replica.lease, {"auto-restart": restarter.run, "culling": self._culler.run,
                                             "collection": collector.run})

    # ------------------------------------------------------------------ service lifecycle

    async def start(self) -> None:
        """Adopt the kernels recorded in the cluster, follow the records, run the duties while leading.

        Called once by the app, after the informers have synced and the lease elector started.
        """
        self._stopping = False
        await self.replica.admissions.ensure()
        await self._follower.start()
        self.duties.start()

    async def stop(self) -> None:
        """Stop serving, within ``settings.stop_timeout`` (called when the gateway stops: SIGTERM).

        The duties stop first.  With ``shut_down_kernels_at_stop`` (the embedded cluster, which
        ends with this process) operations in progress are cancelled (callers get 503; the
        provisioner removes what cancelled launches created) and every kernel is shut down, so
        nothing is left behind.  Otherwise the kernels are the cluster's: operations in
        progress get the grace to finish, then are cancelled (a cancelled launch is undone, a
        cancelled restart handed back to the lease holder), and the kernels keep running for
        the other replicas and the next gateway.  No task of the service survives this call.
        """
        self._stopping = True
        await self.duties.stop()
        if self.settings.shut_down_kernels_at_stop:
            await self._operations.cancel_all()
            await self._shut_everything_down()
        else:
            pending = list(self._operations)
            if pending:
                log.info("finishing %d kernel operations before stopping", len(pending))
                _, late = await asyncio.wait(pending, timeout=self.settings.stop_timeout)
                if late:
                    log.warning("%d kernel operations did not finish within %ss; abandoning them to the other "
                                "replicas", len(late), self.settings.stop_timeout)
            await self._operations.cancel_all()
        await self._follower.stop()
        await self._activity.stop()
        await self._presence.stop()
        await self._pods.close()

    async def _shut_everything_down(self) -> None:
        kernels = self.list()
        if not kernels:
            return
        log.info("shutting down %d kernels", len(kernels))
        shutdowns = [self._operations.spawn(about_kernel(k.id, self._ops.shutdown(k)), f"shutdown {k.id}")
                     for k in kernels]
        _, late = await asyncio.wait(shutdowns, timeout=self.settings.stop_timeout)
        if late:
            log.error("kernels %s were not shut down within %ss", sorted(k.id for k in self.list()),
                      self.settings.stop_timeout)
            await asyncio.gather(*(cancel_and_wait(task) for task in late))

    # ------------------------------------------------------------------ queries

    def get(self, kernel_id: str) -> Kernel:
        """The kernel with this id (:class:`KernelNotFound`, 404, when there is none)."""
        kernel = self._kernels.get(kernel_id) if isinstance(kernel_id, str) else None
        if kernel is None or not kernel.listed:
            raise KernelNotFound(f"Kernel does not exist: {shown(str(kernel_id))}")
        return kernel

    def list(self) -> list[Kernel]:
        """Every kernel launched and not shut down, on any replica (starts in progress are not listed)."""
        return [kernel for kernel in self._kernels.values() if kernel.listed]

    def __contains__(self, kernel_id: object) -> bool:
        kernel = self._kernels.get(kernel_id) if isinstance(kernel_id, str) else None
        return kernel is not None and kernel.listed

    # ------------------------------------------------------------------ start

    async def start_kernel(self, *, name: str | None, env: Mapping[str, Any] | None, username_fallback: str) -> Kernel:
        """Start a kernel of kernelspec ``name`` (default if ``None``) for a ``POST /api/kernels``.

        Checks, in order, before anything is created: the kernelspec (404), the env (400,
        :mod:`gateway.kernels.env`), the user (403), a client ``KERNEL_ID`` already in use
        (409), the placement (400/403), one request at a time in the order they arrive.  Then
        writes the kernel's record (``launching``: before anything else of it exists) and admits
        it against the limits counted on every replica, starts in progress included (403; 503
        when too contended; a refused kernel's record is deleted again).  Then launches it and
        waits until the kernel answers.  Cancelling the caller cancels none of this: the kernel
        is still started and listed.  Launch failures raise :class:`KernelLaunchFailed` with the
        provisioner's status, everything created removed.
        """
        self._refuse_if_stopping()
        return await self._run_owned(self.telemetry.timed_start(name, self._start(name, env, username_fallback)),
                                     "start a kernel")

    def _refuse_if_stopping(self) -> None:
        if self._stopping:
            raise GatewayStopping()

    async def _start(self, name: str | None, env: Mapping[str, Any] | None, username_fallback: str) -> Kernel:
        """The task of :meth:`start_kernel`: check, record and admit (in arrival order), then launch."""
        async with self._admission:
            spec = await self.specs.choose(name)
            resolved = kernel_environment(env, spec_env=spec.info.env, settings=self.settings,
                                          username_fallback=username_fallback)
            spec.check_user(resolved.username)
            self._refuse_if_stopping()  # stop() may have begun while the kernelspec was read
            kernel_id = resolved.kernel_id
            tag_task(kernel_id)  # this start's log lines, and those of the tasks it starts, name the kernel
            if kernel_id in self._kernels or self._records.get(kernel_id) is not None:
                raise KernelConflict(f"Kernel {kernel_id} already exists.")
            request = LaunchRequest(kernel_id=kernel_id, username=resolved.username, spec=spec.info,
                                    env=resolved.env, timeout=resolved.timeout)
            try:
                placement = self.provisioner.plan(request)
            except LaunchError as error:
                raise KernelLaunchFailed(error.message, status=error.status) from error
            kernel = Kernel(request)
            kernel.placement = placement
            self._hook(kernel)
            self._kernels[kernel_id] = kernel
            await self._register(kernel, self.provisioner.record_placement(request, placement))
        log.info("starting kernel %s (%s) for %s", kernel_id, spec.name, resolved.username)
        return await self._first_launch(kernel, placement)

    async def _register(self, kernel: Kernel, placement: RecordPlacement) -> None:
        """Record the kernel ``launching``, then admit it; what a refusal or failure leaves is undone."""
        first = launching(kernel.request, placement, actor=self.replica.identity, now=_utcnow(),
                          grace=self.settings.deadline_grace)
        try:
            async with kernel.lock:
                try:
                    kernel.record = await self._records.create(first)
                except AlreadyExists:
                    raise KernelConflict(f"Kernel {kernel.id} already exists.") from None
                await self.replica.admissions.admit(kernel.id, kernel.username, max_kernels=self.settings.max_kernels,
                                                    max_per_user=self.settings.max_kernels_per_user)
        except BaseException as error:
            # A refusal wrote no admission, and a taken id's admission is the other kernel's.
            refused = isinstance(error, (KernelConflict, KernelLimitReached))
            await shielded(self._undo_start(kernel, admitted=not refused))
            raise

    async def _first_launch(self, kernel: Kernel, placement: Placement) -> Kernel:
        """Launch the recorded and admitted kernel, record it running; a failed launch leaves nothing."""
        try:
            async with kernel.lock:
                await self._pods.launch(kernel, placement, first=True,
                                        answer_by=answer_by(kernel.record, self.settings.deadline_grace))
                await self._ops.recorded_running(kernel, 0)  # listed, and served by every replica, from here
        except BaseException:
            await shielded(self._undo_start(kernel))
            raise
        await self._follower.apply(kernel.id)
        return kernel

    async def _undo_start(self, kernel: Kernel, *, admitted: bool = True) -> None:
        """A first start failed, was refused or cancelled: its pod and placement (if launched), its record, its
        admission (when it may have been given).

        The record goes only once nothing else of the kernel is left: when the API refused a deletion, it stays,
        claimed ``terminating`` for the lease holder to finish (:meth:`KernelOperations.leave_to_lease_holder`),
        and this replica follows it as it would another replica's."""
        released = not self._pods.left_behind(kernel.id)
        if kernel.running is not None:
            released = await self._pods.release(kernel) and released
        if admitted:
            await self.replica.admissions.release(kernel.id)
        kept = kernel.record is not None and not released
        if kept:
            await self._ops.leave_to_lease_holder(kernel)
        elif kernel.record is not None:  # last: while it exists the lease holder can finish this undoing
            try:
                await self._records.delete(kernel.id)
            except Exception as error:  # left launching: the lease holder collects it past its deadline
                log.error("kernel %s: its record could not be deleted: %s", kernel.id, error)
                kept = True
        if self._kernels.get(kernel.id) is kernel:
            del self._kernels[kernel.id]
        if kept and not self._stopping:
            await self._follower.apply(kernel.id)  # a kernel of the kept record, for the lease holder's collection

    # ------------------------------------------------------------------ restart, interrupt, shutdown

    async def restart(self, kernel_id: str) -> Kernel:
        """Restart a kernel for ``POST /api/kernels/{id}/restart``: a new pod, same id, namespace and role binding.

        Waits for a restart or shutdown of the same kernel in progress first (on this replica or
        another); a restart by another replica in progress is the answer; 404 if a shutdown
        ended the kernel.  If the new pod cannot be launched the kernel is released and
        :class:`KernelLaunchFailed` raised.  Cancelling the caller does not cancel the restart.
        """
        kernel = self.get(kernel_id)
        with kernel_logs(kernel_id):
            return await self._run_owned(self._applied(kernel, self._ops.restart(kernel)), f"restart {kernel_id}")

    async def interrupt(self, kernel_id: str) -> None:
        """Interrupt what the kernel runs, for ``POST /api/kernels/{id}/interrupt``.

        SIGINT through its launcher, or ``interrupt_request`` for ``interrupt_mode: message``
        kernelspecs, whichever replica launched it.  409 while the kernel has no running pod.
        Takes no lock: a signal neither launches nor stops a pod.
        """
        kernel = self.get(kernel_id)
        running = kernel.running
        if running is None or kernel.state in (RESTARTING, AUTORESTARTING, TERMINATING, DEAD):
            raise KernelConflict(f"Kernel {kernel_id} is {kernel.state} and cannot be interrupted now.")
        if kernel.request.spec.interrupt_mode == "message":
            async with KernelChannels(running.connection, channels=("control",),
                                      session=gateway_session(running.connection)) as channels:
                try:
                    await channels.request("control", "interrupt_request", timeout=self.settings.shutdown_wait_time)
                except ChannelTimeout:
                    raise KernelError(f"Kernel {kernel_id} did not answer the interrupt request.", status=504) from None
            return
        try:
            await self.provisioner.signal(running, _interrupt_signal(kernel.request.spec.env))
        except CommError as error:
            raise KernelError(f"Kernel {kernel_id} could not be interrupted: its launcher did not answer ({error}).",
                              status=500) from None

    async def shutdown(self, kernel_id: str) -> None:
        """Shut a kernel down: ``shutdown_request`` on control (bounded wait), its pod deleted, its namespace and
        role binding deleted when the gateway created them, then its record.

        Called for ``DELETE /api/kernels/{id}`` and by the culler.  A shutdown of a kernel being
        shut down (here or on another replica) waits for that one and returns.  Cancelling the
        caller does not cancel the shutdown.
        """
        kernel = self.get(kernel_id)
        with kernel_logs(kernel_id):
            await self._run_owned(self._applied(kernel, self._ops.shutdown(kernel)), f"shutdown {kernel_id}")

    async def cull_idle_kernels(self) -> builtins.list[str]:
        """Shut down the kernels idle past ``cull_idle_timeout`` now (the lease holder's timer does the same); their ids."""
        return await self._culler.cull_once()

    # ------------------------------------------------------------------ websocket bookkeeping

    def connected(self, kernel_id: str) -> None:
        """A websocket client connected to the kernel through this replica (called by the HTTP layer).

        The model's ``connections`` counts this replica's clients; the culler also heeds those other
        replicas recorded (:mod:`gateway.kernels.presence`).
        """
        kernel = self._kernels.get(kernel_id)
        if kernel is not None and kernel.listed:
            kernel.connections += 1
            self._presence.changed(kernel)

    def disconnected(self, kernel_id: str) -> None:
        """A websocket client of the kernel went away."""
        kernel = self._kernels.get(kernel_id)
        if kernel is not None and kernel.connections > 0:
            kernel.connections -= 1
            self._presence.changed(kernel)

    def record_activity(self, kernel_id: str, msg_type: str, execution_state: str | None = None) -> None:
        """A message of ``msg_type`` passed between a client and the kernel (called by the websocket bridge).

        Tracked types count as activity for culling, as in Jupyter Server.  The kernel's own
        iopub subscription already follows its status, so an ``execution_state`` given here
        only ends ``starting``.
        """
        kernel = self._kernels.get(kernel_id)
        if kernel is not None and kernel.listed:
            record(kernel, msg_type, None, execution_state)

    # ------------------------------------------------------------------ owned operations

    def _hook(self, kernel: Kernel) -> None:
        """Every kernel of this replica writes its activity back to its record, rate-limited."""
        kernel.on_activity = self._activity.touched

    async def _applied(self, kernel: Kernel, operation: Coroutine[Any, Any, T]) -> T:
        """Run ``operation``, then bring the kernel in line with anything another replica recorded meanwhile."""
        try:
            return await operation
        finally:
            if not self._stopping:
                await self._follower.apply(kernel.id)

    async def _run_owned(self, operation: Coroutine[Any, Any, T], name: str) -> T:
        """Run ``operation`` as a task of the service and return its result.

        The caller's cancellation ends only the caller's wait: the operation goes on to its
        end, as a start, restart or shutdown left half-way would leave a kernel without its
        pod.  Only :meth:`stop` cancels it; the caller then gets :class:`GatewayStopping` (503).
        """
        task = self._operations.spawn(operation, name)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled() and self._stopping:
                raise GatewayStopping() from None
            raise


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _interrupt_signal(spec_env: Mapping[str, str]) -> int:
    """SIGINT, or the kernelspec's ``EG_ALTERNATE_SIGINT`` (a signal name such as ``SIGUSR2``) as in Enterprise Gateway."""
    name = spec_env.get("EG_ALTERNATE_SIGINT", "")
    value = getattr(signal, name, None) if name.startswith("SIG") else None
    return int(value) if isinstance(value, signal.Signals) else int(signal.SIGINT)
