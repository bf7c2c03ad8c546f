"""The kernel service: start, restart, interrupt and shut down kernels running as pods.

One :class:`KernelService` per gateway, built by ``gateway.app`` over the
provisioner and the kernelspecs, and called by the HTTP layer.  It keeps the
gateway's kernels (:class:`~gateway.kernels.kernel.Kernel`), validates start
requests (:mod:`gateway.kernels.env`, kernelspec users, limits), and drives
each kernel's pod through the provisioner.

Lifecycle is event-driven: a kernel's execution state and activity come from
its iopub messages, pod deaths from the provisioner's informer-fed
:meth:`~gateway.provisioner.pods.PodProvisioner.deaths` stream.  Nothing polls
the cluster.  Every operation that stops or launches a kernel's pod holds that
kernel's lock, so concurrent restarts and shutdowns of one kernel run one after
the other and a kernel never has two pods.

Auto-restart: when a kernel's pod dies on its own (its process crashed, it was
OOM-killed, someone deleted it), the kernel is relaunched with the same id and
placement, up to ``restart_limit`` times in a row; past that it is marked dead
and everything it held is released.  Enterprise Gateway instead shuts a kernel
with no connected client down when its pod dies; here the kernel is restarted
regardless, so a user who reconnects later still has a kernel under the same
id (its in-memory state is lost either way).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import signal
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import zmq

from gateway.cluster.informer import InformerStopped
from gateway.provisioner.comm import CommError
from gateway.provisioner.errors import LaunchError
from gateway.provisioner.model import LaunchRequest, Placement
from gateway.provisioner.pods import PodProvisioner

from .activity import ActivityWatcher, record
from .channels import ChannelTimeout, KernelChannels
from .culling import Culler
from .env import kernel_environment
from .errors import (
    KernelConflict,
    KernelError,
    KernelLaunchFailed,
    KernelLimitReached,
    KernelNotFound,
    UnknownKernelSpec,
    shown,
)
from .kernel import AUTORESTARTING, DEAD, RESTARTING, STARTING, TERMINATING, Kernel
from .settings import KernelSettings
from .specs import KernelSpecs

log = logging.getLogger("gateway.kernels")
T = TypeVar("T")

ALIVE_PHASES = frozenset({"Pending", "Running"})
STABLE_START_SECONDS = 10.0
"""A kernel whose pod lived this long since its last launch starts counting restarts from zero again."""
READY_TIMEOUT_CAP = 60.0
"""At most this long to wait for a launched kernel's ``kernel_info_reply``."""


class KernelService:
    """The gateway's kernels and every operation on them (see the module docstring)."""

    def __init__(self, provisioner: PodProvisioner, specs: KernelSpecs, settings: KernelSettings) -> None:
        self.provisioner = provisioner
        self.specs = specs
        self.settings = settings
        self._kernels: dict[str, Kernel] = {}
        self._pending: dict[str, str] = {}  # kernel id -> username of starts in progress (limits count them)
        self._watchers: dict[str, ActivityWatcher] = {}
        self._tasks: set[asyncio.Task[Any]] = set()  # launches and auto-restarts in progress
        self._autorestarts: set[str] = set()
        self._deaths: asyncio.Task[None] | None = None
        self._culler = Culler(settings, self.list, self.shutdown)
        self._stopping = False

    # ------------------------------------------------------------------ service lifecycle

    async def start(self) -> None:
        """Follow pod deaths and start culling (called once by the app, after the informer started)."""
        self._stopping = False
        self._deaths = asyncio.create_task(self._follow_deaths(), name="kernel-deaths")
        self._culler.start()

    async def stop(self) -> None:
        """Shut down every kernel this gateway started, within ``settings.stop_timeout``.

        Called when the gateway stops (SIGTERM): pods and the namespaces the
        gateway created are deleted, so nothing is left behind.  Starts and
        auto-restarts in progress are cancelled first (the provisioner removes
        what they created).  No task of the service survives this call.
        """
        self._stopping = True
        await self._culler.stop()
        if self._deaths is not None:
            await _cancel(self._deaths)
            self._deaths = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        kernels = list(self._kernels.values())
        if kernels:
            log.info("shutting down %d kernels", len(kernels))
            shutdowns = [self._spawn(self._shutdown(k), f"shutdown-{k.id}") for k in kernels]
            _, late = await asyncio.wait(shutdowns, timeout=self.settings.stop_timeout)
            if late:
                log.error("kernels %s were not shut down within %ss", sorted(self._kernels),
                          self.settings.stop_timeout)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        for kernel_id in list(self._watchers):
            await self._unwatch(kernel_id)

    # ------------------------------------------------------------------ queries

    def get(self, kernel_id: str) -> Kernel:
        """The kernel with this id (:class:`KernelNotFound`, 404, when there is none)."""
        kernel = self._kernels.get(kernel_id)
        if kernel is None:
            raise KernelNotFound(f"Kernel does not exist: {shown(str(kernel_id))}")
        return kernel

    def list(self) -> list[Kernel]:
        """Every kernel started and not shut down (starts in progress are not listed)."""
        return list(self._kernels.values())

    def __contains__(self, kernel_id: object) -> bool:
        return kernel_id in self._kernels

    # ------------------------------------------------------------------ start

    async def start_kernel(self, *, name: str | None, env: Mapping[str, Any] | None, username_fallback: str) -> Kernel:
        """Start a kernel of kernelspec ``name`` (default if ``None``) for a ``POST /api/kernels``.

        Checks, in order, before anything is created: the kernelspec (404),
        the env (400, :mod:`gateway.kernels.env`), the user (403), a client
        ``KERNEL_ID`` already in use (409), the limits counting starts in
        progress (403).  Then launches and waits until the kernel answers.
        Cancelling the caller does not cancel the launch: the kernel is still
        started and listed.  Launch failures raise :class:`KernelLaunchFailed`
        with the provisioner's status, everything created removed.
        """
        if self._stopping:
            raise KernelError("The gateway is shutting down.", status=503)
        name = name or self.specs.default_name
        if not name:
            raise UnknownKernelSpec("No kernelspec is available.")
        info = self.specs.info(name)
        resolved = kernel_environment(env, spec_env=info.env, settings=self.settings,
                                      username_fallback=username_fallback)
        self.specs.check_user(name, resolved.username)
        kernel_id = resolved.kernel_id
        if kernel_id in self._kernels or kernel_id in self._pending:
            raise KernelConflict(f"Kernel {kernel_id} already exists.")
        self._check_limits(resolved.username)
        request = LaunchRequest(kernel_id=kernel_id, username=resolved.username, spec=info, env=resolved.env,
                                timeout=resolved.timeout)
        kernel = Kernel(request)
        self._pending[kernel_id] = resolved.username
        log.info("starting kernel %s (%s) for %s", kernel_id, name, resolved.username)
        return await self._await_owned(self._spawn(self._first_launch(kernel), f"start-{kernel_id}"))

    def _check_limits(self, username: str) -> None:
        """``EG_MAX_KERNELS`` / ``EG_MAX_KERNELS_PER_USER``, counting running kernels and pending starts (EG #855)."""
        limit = self.settings.max_kernels
        total = len(self._kernels) + len(self._pending)
        if limit is not None and total >= limit:
            raise KernelLimitReached(
                f"Kernel start refused: the gateway runs at most {limit} kernels and has {total} running or starting."
            )
        per_user = self.settings.max_kernels_per_user
        if per_user is not None:
            mine = sum(1 for k in self._kernels.values() if k.username == username)
            mine += sum(1 for user in self._pending.values() if user == username)
            if mine >= per_user:
                raise KernelLimitReached(
                    f"Kernel start refused: user {shown(username)} may run at most {per_user} kernels "
                    f"and has {mine} running or starting."
                )

    async def _first_launch(self, kernel: Kernel) -> Kernel:
        try:
            async with kernel.lock:
                await self._launch(kernel, None)
                self._kernels[kernel.id] = kernel  # listed, and counted, from here (no await in between)
        finally:
            self._pending.pop(kernel.id, None)
        return kernel

    # ------------------------------------------------------------------ restart, interrupt, shutdown

    async def restart(self, kernel_id: str) -> Kernel:
        """Restart a kernel: its pod replaced by a new one, same id, namespace and role binding.

        Waits for a restart or shutdown of the same kernel in progress first;
        404 if that shut it down.  If the new pod cannot be launched the kernel
        is released and :class:`KernelLaunchFailed` raised.  Cancelling the
        caller does not cancel the restart (a kernel left without its pod would
        have to be given up).
        """
        kernel = self.get(kernel_id)
        return await self._await_owned(self._spawn(self._restart(kernel), f"restart-{kernel_id}"))

    async def _restart(self, kernel: Kernel) -> Kernel:
        kernel_id = kernel.id
        async with kernel.lock:
            self._check_listed(kernel)
            log.info("restarting kernel %s", kernel_id)
            kernel.set_state(RESTARTING)
            await self._stop_pod(kernel, ask_kernel=True, restart=True)
            kernel.restart_count = 0
            try:
                await self._launch(kernel, kernel.placement)
            except BaseException as error:
                await self._bury(kernel, reason=getattr(error, "message", "The kernel could not be restarted."))
                raise
        return kernel

    async def interrupt(self, kernel_id: str) -> None:
        """Interrupt what the kernel runs: SIGINT through its launcher, or ``interrupt_request`` for
        ``interrupt_mode: message`` kernelspecs.  409 while the kernel has no running pod."""
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

        Called for ``DELETE /api/kernels/{id}`` and by the culler.  A shutdown
        of a kernel being shut down waits for that one and returns.  Requests
        on one kernel run in the order they arrived; cancelling the caller does
        not cancel the shutdown.
        """
        kernel = self.get(kernel_id)
        await self._await_owned(self._spawn(self._shutdown(kernel), f"shutdown-{kernel_id}"))

    async def _shutdown(self, kernel: Kernel) -> None:
        async with kernel.lock:
            if self._kernels.get(kernel.id) is not kernel:
                return
            log.info("shutting down kernel %s", kernel.id)
            kernel.set_state(TERMINATING)
            try:
                await self._stop_pod(kernel, ask_kernel=True, restart=False)
            finally:
                await self._bury(kernel)

    async def cull_idle_kernels(self) -> builtins.list[str]:
        """Shut down the kernels idle past ``cull_idle_timeout`` now (the culler's timer calls the same); their ids."""
        return await self._culler.cull_once()

    # ------------------------------------------------------------------ websocket bookkeeping

    def connected(self, kernel_id: str) -> None:
        """A websocket client connected to the kernel (called by the HTTP layer)."""
        kernel = self._kernels.get(kernel_id)
        if kernel is not None:
            kernel.connections += 1

    def disconnected(self, kernel_id: str) -> None:
        """A websocket client of the kernel went away."""
        kernel = self._kernels.get(kernel_id)
        if kernel is not None and kernel.connections > 0:
            kernel.connections -= 1

    def record_activity(self, kernel_id: str, msg_type: str, execution_state: str | None = None) -> None:
        """A message of ``msg_type`` passed between a client and the kernel (called by the websocket bridge).

        Tracked types count as activity for culling, as in Jupyter Server.  The
        kernel's own iopub subscription already follows its status, so an
        ``execution_state`` given here only ends ``starting``.
        """
        kernel = self._kernels.get(kernel_id)
        if kernel is not None:
            record(kernel, msg_type, None, execution_state)

    # ------------------------------------------------------------------ pods

    async def _launch(self, kernel: Kernel, placement: Placement | None) -> None:
        """Launch the kernel's pod (first start when ``placement`` is ``None``) and wait until it answers.

        On failure nothing of this launch is left (and on a first start the
        placement is released); raises :class:`KernelLaunchFailed`.
        """
        kernel.set_state(STARTING)
        try:
            running = await self.provisioner.launch(kernel.request, placement)
        except LaunchError as error:
            log.warning("kernel %s could not be launched: %s", kernel.id, error.reason)
            raise KernelLaunchFailed(error.reason, status=error.status) from error
        kernel.running = running
        kernel.placement = running.placement
        try:
            await self._await_ready(kernel)
        except BaseException as error:
            await _shielded(self._stop_running(kernel))
            if placement is None:
                await _shielded(self._release(running.placement))
            if isinstance(error, (ChannelTimeout, zmq.ZMQError)):
                raise KernelLaunchFailed(f"Kernel {kernel.id} started but did not answer a kernel_info_request.",
                                         status=504) from None
            raise
        self._watch(kernel)
        kernel.launched(running)

    async def _await_ready(self, kernel: Kernel) -> None:
        """Wait for the kernel's ``kernel_info_reply``: the launcher called back, the kernel must answer too."""
        assert kernel.connection is not None
        timeout = min(kernel.request.timeout, READY_TIMEOUT_CAP)
        async with KernelChannels(kernel.connection, channels=("shell",)) as channels:
            await channels.request("shell", "kernel_info_request", timeout=timeout)

    async def _stop_pod(self, kernel: Kernel, *, ask_kernel: bool, restart: bool) -> None:
        """Stop the kernel's pod, asking the kernel to shut down first when it may still be alive."""
        await self._unwatch(kernel.id)
        running = kernel.running
        if running is None:
            return
        if ask_kernel and self.provisioner.pod_phase(kernel.id) in ALIVE_PHASES:
            try:
                async with KernelChannels(running.connection, channels=("control",)) as channels:
                    await channels.request("control", "shutdown_request", {"restart": restart},
                                           timeout=self.settings.shutdown_wait_time)
            except (ChannelTimeout, zmq.ZMQError) as error:
                log.info("kernel %s did not answer shutdown_request (%s); deleting its pod", kernel.id, error)
        await self._stop_running(kernel)

    async def _stop_running(self, kernel: Kernel) -> None:
        running = kernel.running
        if running is None:
            return
        try:
            await self.provisioner.stop(running, grace_seconds=0)
        except Exception:
            log.exception("stopping the pod of kernel %s failed", kernel.id)
        kernel.stopped()

    async def _bury(self, kernel: Kernel, *, reason: str = "") -> None:
        """The kernel is over: its pod stopped, its placement released, removed from the service, dead."""
        await self._unwatch(kernel.id)
        await _shielded(self._stop_running(kernel))
        if kernel.placement is not None:
            await _shielded(self._release(kernel.placement))
        self._kernels.pop(kernel.id, None)
        kernel.set_state(DEAD, reason=reason)
        log.info("kernel %s is gone%s", kernel.id, f" ({reason})" if reason else "")

    async def _release(self, placement: Placement) -> None:
        try:
            await self.provisioner.release(placement)
        except Exception:
            log.exception("releasing namespace %s failed", placement.namespace)

    def _watch(self, kernel: Kernel) -> None:
        watcher = ActivityWatcher(kernel)
        self._watchers[kernel.id] = watcher
        watcher.start()

    async def _unwatch(self, kernel_id: str) -> None:
        watcher = self._watchers.pop(kernel_id, None)
        if watcher is not None:
            await watcher.stop()

    def _check_listed(self, kernel: Kernel) -> None:
        if self._kernels.get(kernel.id) is not kernel:
            raise KernelNotFound(f"Kernel does not exist: {kernel.id}")

    # ------------------------------------------------------------------ deaths and auto-restart

    async def _follow_deaths(self) -> None:
        """Consume the provisioner's deaths: each names a kernel whose current pod died on its own.

        The provisioner reports a pod only while it is the kernel's running
        pod, and this loop reads ``kernel.running`` in the same step, so the
        pod uid captured here is the one that died.
        """
        while True:
            try:
                async for kernel_id in self.provisioner.deaths():
                    self._on_death(kernel_id)
            except InformerStopped:
                log.info("pod deaths are no longer followed: the pod informer stopped")
                return
            except Exception:
                log.exception("following pod deaths failed; following them again in a second")
                await asyncio.sleep(1.0)
            else:
                return

    def _on_death(self, kernel_id: str) -> None:
        kernel = self._kernels.get(kernel_id)
        if kernel is None or kernel.running is None or kernel_id in self._autorestarts or self._stopping:
            return
        self._autorestarts.add(kernel_id)
        self._spawn(self._auto_restart(kernel, kernel.running.pod_uid), f"autorestart-{kernel_id}")

    async def _auto_restart(self, kernel: Kernel, dead_pod_uid: str) -> None:
        """Relaunch a kernel whose pod died, up to ``restart_limit`` times in a row, else bury it."""
        try:
            async with kernel.lock:
                if self._kernels.get(kernel.id) is not kernel:
                    return
                if kernel.running is None or kernel.running.pod_uid != dead_pod_uid:
                    return  # a restart replaced the pod that died while we waited for the lock
                if time.monotonic() - kernel.launched_at > STABLE_START_SECONDS:
                    kernel.restart_count = 0
                while True:
                    kernel.restart_count += 1
                    limit = self.settings.restart_limit
                    if kernel.restart_count > limit:
                        log.error("kernel %s: its pod died and %d restarts did not keep it up; giving up",
                                  kernel.id, limit)
                        await self._bury(kernel, reason=f"The kernel died and was restarted {limit} times.")
                        return
                    log.warning("kernel %s: its pod died; restarting it (%d of %d)", kernel.id,
                                kernel.restart_count, limit)
                    kernel.set_state(AUTORESTARTING)
                    await self._stop_pod(kernel, ask_kernel=False, restart=True)
                    try:
                        await self._launch(kernel, kernel.placement)
                        return
                    except KernelLaunchFailed as error:
                        log.warning("kernel %s: relaunch failed: %s", kernel.id, error.message)
        finally:
            self._autorestarts.discard(kernel.id)

    async def _await_owned(self, task: asyncio.Task[T]) -> T:
        """The result of a task the service owns, unaffected by the caller's cancellation; 503 if stop() cancelled it."""
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled() and self._stopping:
                raise KernelError("The gateway is shutting down.", status=503) from None
            raise

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _interrupt_signal(spec_env: Mapping[str, str]) -> int:
    """SIGINT, or the kernelspec's ``EG_ALTERNATE_SIGINT`` (a signal name such as ``SIGUSR2``) as in Enterprise Gateway."""
    name = spec_env.get("EG_ALTERNATE_SIGINT", "")
    value = getattr(signal, name, None) if name.startswith("SIG") else None
    return int(value) if isinstance(value, signal.Signals) else int(signal.SIGINT)


async def _shielded(coro: Any) -> None:
    """Run a clean-up to its end even if the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(coro)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
