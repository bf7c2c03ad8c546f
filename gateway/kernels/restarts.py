"""Auto-restart: a kernel whose pod died on its own gets a new pod, with the same id and placement.

A pod dies on its own when its kernel process crashed, it was OOM-killed, or someone deleted
it.  The kernel is then relaunched, up to ``restart_limit`` times in a row; past that it is
given up: marked dead and everything it held released.  Enterprise Gateway instead shuts a
kernel with no connected client down when its pod dies; here the kernel is restarted
regardless, so a user who reconnects later still has a kernel under the same id (its
in-memory state is lost either way).

How a death becomes a restart:

1. The provisioner's :meth:`~gateway.provisioner.base.KernelProvisioner.deaths` names a kernel
   whose running pod died.  It reports a pod only while it is the kernel's running pod, and
   :class:`AutoRestarter` reads ``kernel.running`` in the same step, so the pod uid it keeps
   is the one that died.
2. One auto-restart task per kernel is queued in the kernel service's tasks; a death reported
   while the kernel's auto-restart is queued or running is left to that one.
3. The task waits for the kernel's lock.  A restart or shutdown that held the lock first may
   have replaced the pod that died, or ended the kernel: then there is nothing left to do.
4. Else the kernel goes ``autorestarting``, its dead pod is removed and a new one launched;
   a relaunch that fails is tried again, each try counting towards the limit.  A kernel whose
   pod lived :data:`STABLE_START_SECONDS` counts from zero again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from gateway.aio import OwnedTasks, cancel_and_wait
from gateway.cluster.informer import InformerStopped
from gateway.provisioner.base import KernelProvisioner

from .errors import KernelLaunchFailed
from .kernel import AUTORESTARTING, Kernel
from .pods import KernelPods
from .settings import KernelSettings

log = logging.getLogger("gateway.kernels")

STABLE_START_SECONDS = 10.0
"""A kernel whose pod lived this long since its last launch starts counting restarts from zero again."""
FOLLOW_RETRY_SECONDS = 1.0
"""How long to wait before following deaths again after an unexpected error."""

GiveUp = Callable[[Kernel, str], Awaitable[None]]
"""The kernel service's end of a kernel: release everything, unlist it, mark it dead with a reason."""


class AutoRestarter:
    """Follows pod deaths and restarts the kernels they name (see the module docstring).

    Made by the kernel service, which passes its table of listed kernels (read only here),
    the pod steps, what gives a kernel up, and its tasks (so its stop cancels auto-restarts
    in progress with every other operation).
    """

    def __init__(self, provisioner: KernelProvisioner, pods: KernelPods, settings: KernelSettings, *,
                 listed: Mapping[str, Kernel], give_up: GiveUp, tasks: OwnedTasks) -> None:
        self._provisioner = provisioner
        self._pods = pods
        self._settings = settings
        self._listed = listed
        self._give_up = give_up
        self._tasks = tasks
        self._follower: asyncio.Task[None] | None = None
        self._restarting: set[str] = set()
        """Ids of kernels whose auto-restart is queued or running."""

    def start(self) -> None:
        """Follow deaths from now on (called by the kernel service's start)."""
        self._follower = self._tasks.spawn(self._follow_deaths(), "follow pod deaths")

    async def stop(self) -> None:
        """Stop following deaths (called first by the kernel service's stop: no death starts a restart after).

        Auto-restarts in progress are the kernel service's tasks: its stop cancels them next.
        """
        follower, self._follower = self._follower, None
        if follower is not None:
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

    def _on_death(self, kernel_id: str) -> None:
        """The kernel's running pod died: queue its auto-restart, unless one is queued or running already."""
        kernel = self._listed.get(kernel_id)
        if kernel is None or kernel.running is None or kernel_id in self._restarting:
            return
        self._restarting.add(kernel_id)
        self._tasks.spawn(self._restart(kernel, kernel.running.pod_uid), f"autorestart {kernel_id}")

    async def _restart(self, kernel: Kernel, dead_pod_uid: str) -> None:
        """Relaunch the kernel, up to ``restart_limit`` times in a row, else give it up."""
        try:
            async with kernel.lock:
                if not self._still_on(kernel, dead_pod_uid):
                    return
                if time.monotonic() - kernel.launched_at > STABLE_START_SECONDS:
                    kernel.restart_count = 0
                while True:
                    kernel.restart_count += 1
                    limit = self._settings.restart_limit
                    if kernel.restart_count > limit:
                        log.error("kernel %s: its pod died and %d restarts did not keep it up; giving up",
                                  kernel.id, limit)
                        await self._give_up(kernel, f"The kernel died and was restarted {limit} times.")
                        return
                    log.warning("kernel %s: its pod died; restarting it (%d of %d)", kernel.id,
                                kernel.restart_count, limit)
                    kernel.set_state(AUTORESTARTING)
                    await self._pods.stop(kernel, ask_kernel=False, restart=True)
                    try:
                        await self._pods.launch(kernel, kernel.placement)
                        return
                    except KernelLaunchFailed as error:
                        log.warning("kernel %s: relaunch failed: %s", kernel.id, error.message)
        finally:
            self._restarting.discard(kernel.id)

    def _still_on(self, kernel: Kernel, dead_pod_uid: str) -> bool:
        """Whether the kernel is still listed and still on the pod that died.

        Checked once the lock is held: a restart or shutdown that held it first may have
        replaced that pod or ended the kernel.
        """
        return (self._listed.get(kernel.id) is kernel and kernel.running is not None
                and kernel.running.pod_uid == dead_pod_uid)
