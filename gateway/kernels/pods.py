"""A kernel's pod as the kernel service drives it: launched until the kernel answers, watched, stopped, released.

:class:`KernelPods` holds the steps every lifecycle operation is made of, each done through
the provisioner (:class:`~gateway.provisioner.base.KernelProvisioner`).  The kernel service
(start, restart, shutdown, stop) and the auto-restart (:mod:`gateway.kernels.restarts`) call
them with the kernel's :attr:`~gateway.kernels.kernel.Kernel.lock` held, so the steps of one
kernel never interleave.  The clean-up that deletes what the cluster holds for a kernel (its
pod, then its placement) runs to its end even when its caller is cancelled: it is a task of
its own, awaited :func:`~gateway.aio.shielded`, and the service's stop waits for any still
running (:meth:`KernelPods.close`), so a cancelled operation never leaves a pod or a namespace
behind.

While a kernel has a running pod, one :class:`~gateway.kernels.iopub.IopubFeed` follows its
iopub (opened once each launch's kernel answered, closed before each stop), for the kernel's
activity and for every websocket client.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

import zmq

from gateway.aio import OwnedTasks, shielded
from gateway.provisioner.base import KernelProvisioner
from gateway.provisioner.errors import LaunchError
from gateway.provisioner.model import Placement, RunningKernel
from gateway.provisioner.podlog import with_log_lines

from .channels import ChannelTimeout, KernelChannels, gateway_session, gateway_signer, kernel_answers
from .errors import KernelLaunchFailed
from .iopub import IopubFeed
from .kernel import STARTING, Kernel
from .settings import KernelSettings
from .telemetry import KernelTelemetry
from .zmqreader import CallbackSocket, SocketClosed

UNANSWERED = (ChannelTimeout, SocketClosed)
"""How the readiness check ends when a kernel whose launcher called back does not answer: a 504."""

log = logging.getLogger("gateway.kernels")

ALIVE_PHASES = frozenset({"Pending", "Running"})
"""Pod phases in which the kernel may still answer a ``shutdown_request``."""
READY_TIMEOUT_CAP = 60.0
"""At most this long to wait for a launched kernel's ``kernel_info_reply``."""
READY_TIMEOUT_FLOOR = 1.0
"""At least this long to wait for it, however close the launch's deadline."""


class KernelPods:
    """The pod steps of every kernel, and the iopub feed of each running one."""

    def __init__(self, provisioner: KernelProvisioner, settings: KernelSettings,
                 telemetry: KernelTelemetry | None = None) -> None:
        self._provisioner = provisioner
        self._settings = settings
        self._telemetry = telemetry or KernelTelemetry()
        self._feeds: dict[str, IopubFeed] = {}
        """Kernel id -> the iopub feed of its running pod (from its launch until its pod is stopped)."""
        self._cleanups = OwnedTasks("kernel clean-ups")
        """Clean-ups in progress, owned here so they end even when their caller stopped waiting."""
        self._left_behind: set[str] = set()
        """Kernels whose failed first launch could not delete everything it created (until :meth:`left_behind`)."""

    async def launch(self, kernel: Kernel, placement: Placement, *, first: bool,
                     answer_by: datetime | None = None) -> None:
        """Launch the kernel's pod and return once the kernel answers a ``kernel_info_request``.

        Called for a first start (``first``: the placement the provisioner planned, prepared
        now), a restart and an auto-restart (the kernel's placement).  Moves the kernel to
        ``starting``, then on success to ``idle`` with its new pod and connection info.  The
        kernel must answer by ``answer_by`` (its record's deadline, less the time to record it)
        at the latest.  On failure nothing of this launch is left (and on a first start the
        placement is released); raises :class:`KernelLaunchFailed` with the provisioner's status
        (504 for a kernel that does not answer), or whatever else ended the wait (the caller's
        cancellation).  Unless the API refused a deletion: then :meth:`left_behind` says so.
        """
        kernel.set_state(STARTING)
        try:
            running = await self._provisioner.launch(kernel.request, placement, prepare=first)
        except LaunchError as error:
            if first and error.left_behind:
                self._left_behind.add(kernel.id)
            log.warning("kernel %s could not be launched: %s", kernel.id, error.message)
            self._telemetry.launch_failed(kernel, placement, error, first=first)
            raise KernelLaunchFailed(error.message, status=error.status) from error
        kernel.running = running
        kernel.placement = running.placement
        try:
            shell = await self._await_ready(kernel, answer_by)
            try:
                self._watch(kernel, shell=shell)
            except BaseException:
                shell.close()
                raise
        except BaseException as error:
            unanswered = isinstance(error, UNANSWERED)
            tail = ""
            try:
                if unanswered:  # why, as the kernel printed it, while its pod is still there
                    tail = await self._provisioner.log_tail(running)
            finally:
                if not await self._clean_up(kernel, release=first):
                    self._left_behind.add(kernel.id)
            if unanswered:
                detail = f" ({error.detail})" if isinstance(error, ChannelTimeout) and error.detail else ""
                failed = KernelLaunchFailed(with_log_lines(
                    f"Kernel {kernel.id} started but did not answer a kernel_info_request{detail}", tail), status=504)
                self._telemetry.launch_failed(kernel, placement, failed, first=first)
                raise failed from None
            raise
        kernel.launched(running)

    def left_behind(self, kernel_id: str) -> bool:
        """Whether the kernel's failed first launch could not delete everything it created (the API refused).

        Asked once, by the kernel service as it undoes the failed start: it then keeps the kernel's
        record, which leads the lease holder to what is left.
        """
        if kernel_id in self._left_behind:
            self._left_behind.discard(kernel_id)
            return True
        return False

    async def adopt(self, kernel: Kernel, running: RunningKernel) -> None:
        """Serve a kernel running on a pod another replica launched: follow the pod and the kernel's iopub.

        Called by the record follower when a record shows the kernel running on a pod this
        replica has not followed yet (adopted, or relaunched elsewhere).  Moves a kernel that is
        ``starting`` (a first launch or a relaunch elsewhere) to ``idle``.
        """
        await self._unwatch(kernel.id)
        self._provisioner.adopt(running)
        kernel.running = running
        kernel.placement = running.placement
        self._watch(kernel)
        kernel.launched(running)

    async def let_go(self, kernel: Kernel) -> None:
        """Another replica restarts or stops the kernel: stop following its pod and iopub here (nothing is deleted)."""
        await self._unwatch(kernel.id)
        self._provisioner.forget(kernel.id)
        kernel.stopped()

    async def stop(self, kernel: Kernel, *, ask_kernel: bool, restart: bool) -> None:
        """Stop the kernel's pod, keeping its placement for a relaunch.

        Called by a shutdown and a restart (``ask_kernel``: the kernel is sent a
        ``shutdown_request`` first when its pod may still be alive, with ``restart`` in it) and
        by an auto-restart (the pod died: nothing to ask).  Never raises but the cancellation.
        """
        await self._unwatch(kernel.id)
        running = kernel.running
        if running is None:
            return
        if ask_kernel and self._provisioner.pod_phase(kernel.id) in ALIVE_PHASES:
            try:
                async with KernelChannels(running.connection, channels=("control",),
                                            session=gateway_session(running.connection)) as channels:
                    await channels.request("control", "shutdown_request", {"restart": restart},
                                           timeout=self._settings.shutdown_wait_time)
            except (ChannelTimeout, zmq.ZMQError) as error:
                log.info("kernel %s did not answer shutdown_request (%s); deleting its pod", kernel.id, error)
        await self._stop_running(kernel)

    async def release(self, kernel: Kernel, *, verify: bool = False) -> bool:
        """Let go of everything the kernel holds: its watcher, its pod, its placement (namespace, role binding).

        Called when a kernel is over (shut down, given up after a failed restart, or its launch
        abandoned).  With ``verify`` (this replica did not stop the kernel's pod itself: it was
        let go, or a launch may not have created its namespace) its objects are deleted by name,
        each only if labelled for it.  The deletions run to their end even if the caller is
        cancelled.  Returns whether nothing of the kernel is left in the cluster; ``False`` when
        a deletion failed, and the caller keeps the kernel's record for the lease holder to finish.
        """
        await self._unwatch(kernel.id)
        if verify:
            complete = True
            if kernel.placement is not None:
                complete = await shielded(self._cleanups.spawn(self._provisioner.collect(kernel.id, kernel.placement),
                                                               f"collect {kernel.id}"))
            kernel.stopped()
            return complete
        return await self._clean_up(kernel, release=True)

    async def close(self) -> None:
        """Close every iopub feed still open and wait for clean-ups still running.

        Called last by the kernel service's stop, once no operation is left.
        """
        for kernel_id in list(self._feeds):
            await self._unwatch(kernel_id)
        if len(self._cleanups):
            await asyncio.wait(list(self._cleanups))

    async def _await_ready(self, kernel: Kernel, answer_by: datetime | None) -> CallbackSocket:
        """Wait for the kernel's ``kernel_info_reply``: the launcher called back, the kernel must answer too.

        Returns the shell socket the check asked on, for the pod's iopub feed to keep for the first client."""
        assert kernel.connection is not None
        timeout = min(kernel.request.timeout, READY_TIMEOUT_CAP)
        if answer_by is not None:
            timeout = min(timeout, max(READY_TIMEOUT_FLOOR, (answer_by - datetime.now(timezone.utc)).total_seconds()))
        return await kernel_answers(kernel.connection, gateway_signer(kernel.connection), timeout)

    async def _clean_up(self, kernel: Kernel, *, release: bool) -> bool:
        """Stop the kernel's pod, then (with ``release``) release its placement: to the end, whatever the caller.

        Returns whether the placement is released (see :meth:`KernelProvisioner.release`).
        """
        placement = kernel.placement if release else None
        return await shielded(self._cleanups.spawn(self._stop_and_release(kernel, placement), f"clean up {kernel.id}"))

    async def _stop_and_release(self, kernel: Kernel, placement: Placement | None) -> bool:
        await self._unwatch(kernel.id)  # a launch that failed may have opened its feed already
        await self._stop_running(kernel)
        if placement is None:
            return True
        try:
            return await self._provisioner.release(placement)
        except Exception:
            log.exception("releasing namespace %s failed", placement.namespace)
            return False

    async def _stop_running(self, kernel: Kernel) -> None:
        running = kernel.running
        if running is None:
            return
        try:
            await self._provisioner.stop(running, grace_seconds=0)
        except Exception:
            log.exception("stopping the pod of kernel %s failed", kernel.id)
        kernel.stopped()

    def _watch(self, kernel: Kernel, *, shell: CallbackSocket | None = None) -> None:
        assert kernel.connection is not None
        feed = IopubFeed(kernel, kernel.connection, shell=shell)
        self._feeds[kernel.id] = kernel.iopub = feed
        feed.start()

    async def _unwatch(self, kernel_id: str) -> None:
        feed = self._feeds.pop(kernel_id, None)
        if feed is not None:
            if feed.kernel.iopub is feed:
                feed.kernel.iopub = None
            await feed.stop()
