"""Waiting for a launched kernel: its pod's IP, then its launcher's call-back, failing fast when the pod cannot start.

:meth:`PodProvisioner.launch <gateway.provisioner.pods.PodProvisioner.launch>` creates the
kernel's pod, then builds one :class:`LaunchWait` and awaits :meth:`LaunchWait.connection_info`,
which waits in two steps:

1. **The pod's IP**, from the informer of kernel pods.  The launcher's payload is accepted only
   from that address, so the response listener is told it before anything else.
2. **A race** between the launcher calling back (the response listener resolves the launch's
   :class:`~gateway.provisioner.response.PendingResponse`) and the pod failing, ending or being
   deleted (the informer).  Each side is a task that ends with a named :class:`Outcome`, or with
   the connection info; whichever ends first decides the launch, and the other is cancelled.

A pod whose image cannot be pulled fails the launch at once; when the client chose that image
(``KERNEL_IMAGE``, not the kernelspec's), the failure is the request's: 400.

Both steps end by the launch's deadline.  The informer shows the pod version after version;
each one is recorded in the launch's :class:`~gateway.provisioner.podstate.PodProgress` in one
place, :meth:`LaunchWait._recording`.  The conditions waited for (:func:`has_ip_or_failed`,
:func:`has_failed`) only read that progress.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.aio import cancel_and_wait
from gateway.cluster.informer import Informer, InformerStopped
from gateway.cluster.interface import Cluster

from .apicalls import remaining
from .connection import ConnectionInfo
from .errors import ClusterUnavailable, ImagePullFailed, LaunchTimeout, PodFailed
from .podlog import log_tail, with_log_lines
from .podstate import PodProgress
from .response import PendingResponse, ResponseCancelled, ResponseTimeout

RACE_GRACE_SECONDS = 1.0
"""How long the race outlasts the deadline: the response listener's own timeout (at the deadline) ends it first."""

Condition = Callable[[PodProgress], bool]
T = TypeVar("T")

_NOT_WATCHING = "the gateway stopped watching kernel pods"


class Outcome(enum.Enum):
    """How one side of the race for the kernel ended, when not with the kernel's connection info."""

    POD_FAILED = "the informer showed the pod failed, ended or deleted"
    INFORMER_STOPPED = "the informer stopped"
    LISTENER_STOPPED = "the response listener stopped before the launcher called back"
    TIMED_OUT = "the deadline passed"


def has_ip_or_failed(progress: PodProgress) -> bool:
    """The first step is over: the pod has an IP, or it cannot start any more."""
    return progress.failure() is not None or progress.pod_ip() is not None


def has_failed(progress: PodProgress) -> bool:
    """The pod cannot become ready any more (failed, ended, deleted, unpullable, unschedulable)."""
    return progress.failure() is not None


class LaunchWait:
    """One launch's wait for its kernel (see the module docstring).

    Built by :meth:`~gateway.provisioner.pods.PodProvisioner.launch` once the pod exists, with
    the informer of kernel pods, the cluster (to read a failed pod's log), the pod's
    ``progress``, the launch's ``timeout`` (for messages) and its ``deadline`` (a ``loop.time()``);
    ``client_image`` is the image the client chose over its kernelspec's, if it did.
    """

    def __init__(
        self, pods: Informer, cluster: Cluster, progress: PodProgress, *, timeout: float, deadline: float,
        client_image: str = "",
    ) -> None:
        self._pods = pods
        self._client_image = client_image
        self._cluster = cluster
        self.progress = progress
        self._timeout = timeout
        self._deadline = deadline

    async def connection_info(self, pending: PendingResponse) -> ConnectionInfo:
        """Wait for the pod's IP, give it to ``pending``, then race the call-back against the pod's end.

        ``pending`` is the launch's expectation at the response listener, registered before
        the pod was created.  Raises the pod's :class:`~gateway.provisioner.errors.LaunchError`
        when it cannot start, :class:`~gateway.provisioner.errors.LaunchTimeout` at the
        deadline, :class:`~gateway.provisioner.errors.ClusterUnavailable` when the informer or
        the listener stops first.
        """
        ip = await self._pod_ip()
        pending.set_source_ip(ip)
        return await self._call_back(pending, ip)

    async def _pod_ip(self) -> str:
        """The first step: wait until the pod has an IP, or fail the launch if the pod cannot start."""
        progress = self.progress
        try:
            await self._pods.wait_for(
                self._recording(has_ip_or_failed),
                namespace=progress.namespace,
                name=progress.name,
                timeout=remaining(self._deadline),
            )
        except asyncio.TimeoutError:
            raise LaunchTimeout(f"{progress.where} {progress.describe()} after {self._timeout:g}s") from None
        except InformerStopped:
            raise ClusterUnavailable(_NOT_WATCHING) from None
        await self._raise_if_failed()
        ip = progress.pod_ip()
        assert ip is not None
        return ip

    async def _call_back(self, pending: PendingResponse, ip: str) -> ConnectionInfo:
        """The second step: the launcher's connection info, unless the pod ends or time runs out first."""
        kernel_id = pending.kernel_id
        called_back = asyncio.create_task(_launcher_calls_back(pending), name=f"kernel {kernel_id}: call-back")
        pod_ended = asyncio.create_task(self._pod_ends(), name=f"kernel {kernel_id}: pod failure")
        try:
            await asyncio.wait(
                {called_back, pod_ended},
                timeout=remaining(self._deadline) + RACE_GRACE_SECONDS,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for side in (called_back, pod_ended):
                side.cancel()  # both at once (the side that ended ignores it), then wait until each has ended
            for side in (called_back, pod_ended):
                await cancel_and_wait(side)
        answer, pod = _ended_with(called_back), _ended_with(pod_ended)
        if isinstance(answer, ConnectionInfo):
            return answer  # the call-back wins even when the pod failed at the same moment
        # A pod failure comes first, even one recorded just as the other side's end cut this side short.
        await self._raise_if_failed()
        if pod is Outcome.INFORMER_STOPPED:
            raise ClusterUnavailable(_NOT_WATCHING)
        if answer is Outcome.LISTENER_STOPPED:
            raise ClusterUnavailable("the gateway's response listener stopped before the kernel called back")
        raise LaunchTimeout(
            f"{self.progress.where} is running at {ip} but its launcher sent no connection info "
            f"within {self._timeout:g}s"
        )

    async def _pod_ends(self) -> Outcome:
        """One side of the race: how the informer's wait for the pod's failure ended."""
        progress = self.progress
        try:
            await self._pods.wait_for(
                self._recording(has_failed),
                namespace=progress.namespace,
                name=progress.name,
                timeout=remaining(self._deadline) + RACE_GRACE_SECONDS,
            )
        except asyncio.TimeoutError:
            return Outcome.TIMED_OUT
        except InformerStopped:
            return Outcome.INFORMER_STOPPED
        return Outcome.POD_FAILED

    def _recording(self, condition: Condition) -> Callable[[Any], bool]:
        """The informer predicate for ``condition``: record the pod's version in the progress, then ask.

        The one place the launch's progress changes.  The informer calls the predicate with the
        pod as it is when a wait starts and again after each change to it (``None`` while it
        has no pod of that name).
        """

        def record_then_check(pod: Any) -> bool:
            self.progress.observe(pod)
            return condition(self.progress)

        return record_then_check

    async def _raise_if_failed(self) -> None:
        """Raise the pod's failure, if the progress recorded one, with the kernel's last log lines."""
        progress = self.progress
        failure = progress.failure()
        if failure is None:
            return
        if isinstance(failure, ImagePullFailed) and self._client_image:
            raise ImagePullFailed(f"the image KERNEL_IMAGE names cannot be pulled: {failure.message}", status=400)
        if isinstance(failure, PodFailed) and not progress.gone:
            tail = await log_tail(self._cluster, progress.name, progress.namespace)
            if tail:
                failure = PodFailed(
                    with_log_lines(failure.message, tail),
                    container_reason=failure.container_reason,
                    exit_code=failure.exit_code,
                )
        raise failure


async def _launcher_calls_back(pending: PendingResponse) -> ConnectionInfo | Outcome:
    """One side of the race: the launcher's connection info, or why the listener gave up on it."""
    try:
        return await pending
    except ResponseCancelled:
        return Outcome.LISTENER_STOPPED
    except ResponseTimeout:
        return Outcome.TIMED_OUT


def _ended_with(side: asyncio.Task[T]) -> T | None:
    """What a side of the race ended with; ``None`` when the other side's end cut it short."""
    return None if side.cancelled() else side.result()
