"""The kernel service: start, restart, interrupt and shut down kernels running as pods.

One :class:`KernelService` per gateway, built by ``gateway.app`` over a provisioner
(:class:`~gateway.provisioner.base.KernelProvisioner`) and the kernelspecs, and called by the
HTTP layer and the culler.  It keeps the gateway's kernels
(:class:`~gateway.kernels.kernel.Kernel`, whose states and transitions are drawn in
:mod:`gateway.kernels.kernel`), validates start requests (:mod:`gateway.kernels.env`,
kernelspec users, limits), and runs each operation on a kernel from the pod steps of
:mod:`gateway.kernels.pods`.  Pod deaths become restarts in :mod:`gateway.kernels.restarts`.

Lifecycle is event-driven: a kernel's execution state and activity come from its iopub
messages, pod deaths from the provisioner's informer-fed ``deaths()`` stream.  Nothing polls
the cluster.

Concurrency, in four rules:

* Start requests are admitted one at a time, in the order they arrive, so limits and
  ``KERNEL_ID`` conflicts are decided first come, first served.
* Every operation that launches or stops a kernel's pod holds that kernel's ``lock``, so
  concurrent restarts and shutdowns of one kernel run one after the other and a kernel never
  has two pods.
* A start, restart or shutdown runs as a task the service owns: the caller's cancellation
  (a client gone away) ends the caller's wait, never the operation, which would otherwise
  leave a kernel half-launched or half-stopped (:meth:`KernelService._run_owned`).
* Only :meth:`KernelService.stop` cancels operations, and clean-up they started still runs to
  its end (:func:`gateway.aio.shielded`); then every kernel left is shut down.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import signal
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from gateway.aio import OwnedTasks, cancel_and_wait
from gateway.provisioner.base import KernelProvisioner
from gateway.provisioner.comm import CommError
from gateway.provisioner.model import LaunchRequest

from .activity import record
from .channels import ChannelTimeout, KernelChannels
from .culling import Culler
from .env import kernel_environment
from .errors import GatewayStopping, KernelConflict, KernelError, KernelLimitReached, KernelNotFound, shown
from .kernel import AUTORESTARTING, DEAD, RESTARTING, TERMINATING, Kernel
from .pods import KernelPods
from .restarts import AutoRestarter
from .settings import KernelSettings
from .specs import KernelSpecs

log = logging.getLogger("gateway.kernels")
T = TypeVar("T")


class KernelService:
    """The gateway's kernels and every operation on them (see the module docstring)."""

    def __init__(self, provisioner: KernelProvisioner, specs: KernelSpecs, settings: KernelSettings) -> None:
        self.provisioner = provisioner
        self.specs = specs
        self.settings = settings
        self._listed: dict[str, Kernel] = {}
        """Kernels started and not shut down: what :meth:`list` shows and operations act on."""
        self._starting: dict[str, Kernel] = {}
        """Kernels whose first launch is in progress: not listed yet, but their ids are taken and limits count them."""
        self._operations = OwnedTasks("kernel service")
        """Starts, restarts, shutdowns and auto-restarts in progress, and the follower of pod deaths."""
        self._admission = asyncio.Lock()
        """Held while a start request is checked and its id taken: requests are admitted one at a time, in the
        order they arrive, so limits and ``KERNEL_ID`` conflicts are decided first come, first served."""
        self._stopping = False
        """:meth:`stop` has begun: starts are refused with :class:`GatewayStopping` (503)."""
        self._pods = KernelPods(provisioner, settings)
        self._restarter = AutoRestarter(provisioner, self._pods, settings, listed=self._listed,
                                        give_up=self._bury, tasks=self._operations)
        self._culler = Culler(settings, self.list, self.shutdown)

    # ------------------------------------------------------------------ service lifecycle

    async def start(self) -> None:
        """Follow pod deaths and start culling (called once by the app, after the informer started)."""
        self._stopping = False
        self._restarter.start()
        self._culler.start()

    async def stop(self) -> None:
        """Shut down every kernel this gateway started, within ``settings.stop_timeout``.

        Called when the gateway stops (SIGTERM): pods and the namespaces the gateway created are
        deleted, so nothing is left behind.  Pod deaths are no longer followed, then operations
        in progress are cancelled (the provisioner removes what cancelled launches created;
        callers waiting for them get 503).  No task of the service survives this call.
        """
        self._stopping = True
        await self._restarter.stop()
        await self._culler.stop()
        await self._operations.cancel_all()
        kernels = list(self._listed.values())
        if kernels:
            log.info("shutting down %d kernels", len(kernels))
            shutdowns = [self._operations.spawn(self._shutdown(k), f"shutdown {k.id}") for k in kernels]
            _, late = await asyncio.wait(shutdowns, timeout=self.settings.stop_timeout)
            if late:
                log.error("kernels %s were not shut down within %ss", sorted(self._listed),
                          self.settings.stop_timeout)
                await asyncio.gather(*(cancel_and_wait(task) for task in late))
        await self._pods.close()

    # ------------------------------------------------------------------ queries

    def get(self, kernel_id: str) -> Kernel:
        """The kernel with this id (:class:`KernelNotFound`, 404, when there is none)."""
        kernel = self._listed.get(kernel_id)
        if kernel is None:
            raise KernelNotFound(f"Kernel does not exist: {shown(str(kernel_id))}")
        return kernel

    def list(self) -> list[Kernel]:
        """Every kernel started and not shut down (starts in progress are not listed)."""
        return list(self._listed.values())

    def __contains__(self, kernel_id: object) -> bool:
        return kernel_id in self._listed

    # ------------------------------------------------------------------ start

    async def start_kernel(self, *, name: str | None, env: Mapping[str, Any] | None, username_fallback: str) -> Kernel:
        """Start a kernel of kernelspec ``name`` (default if ``None``) for a ``POST /api/kernels``.

        Checks, in order, before anything is created: the kernelspec (404), the env (400,
        :mod:`gateway.kernels.env`), the user (403), a client ``KERNEL_ID`` already in use
        (409), the limits counting starts in progress (403), one request at a time in the order
        they arrive (the kernelspec is read off the event loop meanwhile).  Then launches and
        waits until the kernel answers.  Cancelling the caller does not cancel the launch: the
        kernel is still started and listed.  Launch failures raise :class:`KernelLaunchFailed`
        with the provisioner's status, everything created removed.
        """
        self._refuse_if_stopping()
        async with self._admission:
            spec = await self.specs.choose(name)
            resolved = kernel_environment(env, spec_env=spec.info.env, settings=self.settings,
                                          username_fallback=username_fallback)
            spec.check_user(resolved.username)
            self._refuse_if_stopping()  # stop() may have begun while the kernelspec was read
            kernel_id = resolved.kernel_id
            if kernel_id in self._listed or kernel_id in self._starting:
                raise KernelConflict(f"Kernel {kernel_id} already exists.")
            self._check_limits(resolved.username)
            kernel = Kernel(LaunchRequest(kernel_id=kernel_id, username=resolved.username, spec=spec.info,
                                          env=resolved.env, timeout=resolved.timeout))
            self._starting[kernel_id] = kernel
        log.info("starting kernel %s (%s) for %s", kernel_id, spec.name, resolved.username)
        return await self._run_owned(self._first_launch(kernel), f"start {kernel_id}")

    def _refuse_if_stopping(self) -> None:
        if self._stopping:
            raise GatewayStopping()

    def _check_limits(self, username: str) -> None:
        """``EG_MAX_KERNELS`` / ``EG_MAX_KERNELS_PER_USER``, counting running kernels and pending starts (EG #855)."""
        limit = self.settings.max_kernels
        total = len(self._listed) + len(self._starting)
        if limit is not None and total >= limit:
            raise KernelLimitReached(
                f"Kernel start refused: the gateway runs at most {limit} kernels and has {total} running or starting."
            )
        per_user = self.settings.max_kernels_per_user
        if per_user is not None:
            mine = sum(1 for k in (*self._listed.values(), *self._starting.values()) if k.username == username)
            if mine >= per_user:
                raise KernelLimitReached(
                    f"Kernel start refused: user {shown(username)} may run at most {per_user} kernels "
                    f"and has {mine} running or starting."
                )

    async def _first_launch(self, kernel: Kernel) -> Kernel:
        """The task of :meth:`start_kernel`: launch, then list the kernel (a failed launch never is)."""
        try:
            async with kernel.lock:
                await self._pods.launch(kernel, None)
                self._listed[kernel.id] = kernel  # listed, and counted, from here (no await in between)
        finally:
            self._starting.pop(kernel.id, None)
        return kernel

    # ------------------------------------------------------------------ restart, interrupt, shutdown

    async def restart(self, kernel_id: str) -> Kernel:
        """Restart a kernel for ``POST /api/kernels/{id}/restart``: a new pod, same id, namespace and role binding.

        Waits for a restart or shutdown of the same kernel in progress first; 404 if that shut
        it down.  If the new pod cannot be launched the kernel is released and
        :class:`KernelLaunchFailed` raised.  Cancelling the caller does not cancel the restart
        (a kernel left without its pod would have to be given up).
        """
        kernel = self.get(kernel_id)
        return await self._run_owned(self._restart(kernel), f"restart {kernel_id}")

    async def _restart(self, kernel: Kernel) -> Kernel:
        """The task of :meth:`restart`."""
        async with kernel.lock:
            if self._listed.get(kernel.id) is not kernel:
                raise KernelNotFound(f"Kernel does not exist: {kernel.id}")
            log.info("restarting kernel %s", kernel.id)
            kernel.set_state(RESTARTING)
            await self._pods.stop(kernel, ask_kernel=True, restart=True)
            kernel.restart_count = 0
            try:
                await self._pods.launch(kernel, kernel.placement)
            except BaseException as error:
                await self._bury(kernel, getattr(error, "message", "The kernel could not be restarted."))
                raise
        return kernel

    async def interrupt(self, kernel_id: str) -> None:
        """Interrupt what the kernel runs, for ``POST /api/kernels/{id}/interrupt``.

        SIGINT through its launcher, or ``interrupt_request`` for ``interrupt_mode: message``
        kernelspecs.  409 while the kernel has no running pod.  Takes no lock: a signal neither
        launches nor stops a pod.
        """
        kernel = self.get(kernel_id)
        running = kernel.running
        if running is None or kernel.state in (RESTARTING, AUTORESTARTING, TERMINATING, DEAD):
            raise KernelConflict(f"Kernel {kernel_id} is {kernel.state} and cannot be interrupted now.")
        if kernel.request.spec.interrupt_mode == "message":
            async with KernelChannels(running.connection, channels=("control",)) as channels:
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
        """Shut a kernel down: ``shutdown_request`` on control (bounded wait), its pod deleted, its
        namespace and role binding deleted when the gateway created them.

        Called for ``DELETE /api/kernels/{id}`` and by the culler.  A shutdown of a kernel being
        shut down waits for that one and returns.  Requests on one kernel run in the order they
        arrived; cancelling the caller does not cancel the shutdown.
        """
        kernel = self.get(kernel_id)
        await self._run_owned(self._shutdown(kernel), f"shutdown {kernel_id}")

    async def _shutdown(self, kernel: Kernel) -> None:
        """The task of :meth:`shutdown`, and of :meth:`stop` for each kernel left."""
        async with kernel.lock:
            if self._listed.get(kernel.id) is not kernel:
                return
            log.info("shutting down kernel %s", kernel.id)
            kernel.set_state(TERMINATING)
            try:
                await self._pods.stop(kernel, ask_kernel=True, restart=False)
            finally:
                await self._bury(kernel)

    async def _bury(self, kernel: Kernel, reason: str = "") -> None:
        """The kernel is over: its pod stopped, its placement released, unlisted, dead.

        Called with the kernel's lock held, by a shutdown, a restart whose relaunch failed, and
        the auto-restart giving a kernel up.
        """
        await self._pods.release(kernel)
        self._listed.pop(kernel.id, None)
        kernel.set_state(DEAD, reason=reason)
        log.info("kernel %s is gone%s", kernel.id, f" ({reason})" if reason else "")

    async def cull_idle_kernels(self) -> builtins.list[str]:
        """Shut down the kernels idle past ``cull_idle_timeout`` now (the culler's timer calls the same); their ids."""
        return await self._culler.cull_once()

    # ------------------------------------------------------------------ websocket bookkeeping

    def connected(self, kernel_id: str) -> None:
        """A websocket client connected to the kernel (called by the HTTP layer)."""
        kernel = self._listed.get(kernel_id)
        if kernel is not None:
            kernel.connections += 1

    def disconnected(self, kernel_id: str) -> None:
        """A websocket client of the kernel went away."""
        kernel = self._listed.get(kernel_id)
        if kernel is not None and kernel.connections > 0:
            kernel.connections -= 1

    def record_activity(self, kernel_id: str, msg_type: str, execution_state: str | None = None) -> None:
        """A message of ``msg_type`` passed between a client and the kernel (called by the websocket bridge).

        Tracked types count as activity for culling, as in Jupyter Server.  The kernel's own
        iopub subscription already follows its status, so an ``execution_state`` given here
        only ends ``starting``.
        """
        kernel = self._listed.get(kernel_id)
        if kernel is not None:
            record(kernel, msg_type, None, execution_state)

    # ------------------------------------------------------------------ owned operations

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


def _interrupt_signal(spec_env: Mapping[str, str]) -> int:
    """SIGINT, or the kernelspec's ``EG_ALTERNATE_SIGINT`` (a signal name such as ``SIGUSR2``) as in Enterprise Gateway."""
    name = spec_env.get("EG_ALTERNATE_SIGINT", "")
    value = getattr(signal, name, None) if name.startswith("SIG") else None
    return int(value) if isinstance(value, signal.Signals) else int(signal.SIGINT)
