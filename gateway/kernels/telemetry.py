"""What the kernel service reports as kernels live: metrics, and Kubernetes Events that tell a kernel's story.

The kernel service and its parts call one method of :class:`KernelTelemetry` where something
worth reporting happens: a start ends (:meth:`~KernelTelemetry.timed_start`), a launch fails,
a restart is carried out (by a client's request, or because the kernel's pod died), a kernel
is given up or culled.  Each call counts it in the gateway's metrics
(:class:`~gateway.observability.metrics.GatewayMetrics`) and, for what an operator looks for
in ``kubectl get events``, queues an Event (:class:`~gateway.cluster.events.EventRecorder`),
which never blocks nor fails the operation.  Only the replica doing the work reports it, so
a restart is counted once however many replicas serve the kernel.

An event is about the kernel's pod, in the pod's namespace, when that namespace outlives the
event's story: a shared or operator-made namespace, or a kernel that goes on (an
auto-restart).  When the gateway deletes the kernel's own namespace with the kernel (a failed
first launch, a cull, a kernel given up), the event would go with it: it is written instead
in the gateway's namespace, about the kernel's record (the Secret ``kernel-<id>``), where
``kubectl get events -n <gateway namespace>`` shows it.

Made by the composition root; a service made without one reports nowhere.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from gateway.cluster.events import NORMAL, WARNING, EventRecorder, ObjectRef
from gateway.errors import GatewayError
from gateway.objects.record import record_name
from gateway.observability.metrics import GatewayMetrics
from gateway.provisioner.model import Placement
from gateway.provisioner.podlog import LOG_LINES_MARK

from .errors import GatewayStopping, UnknownKernelSpec
from .kernel import Kernel

T = TypeVar("T")


class KernelTelemetry:
    """The kernel service's reports (see the module docstring)."""

    def __init__(self, metrics: GatewayMetrics | None = None, events: EventRecorder | None = None, *,
                 gateway_namespace: str = "default") -> None:
        self.metrics = metrics or GatewayMetrics()
        self.events = events
        self.gateway_namespace = gateway_namespace

    async def timed_start(self, requested: str | None, start: Coroutine[Any, Any, T]) -> T:
        """Run a kernel start (the service's owned task) and count how it ended, with its duration when ready.

        The kernelspec label is the started kernel's; for a start that failed it is the name
        requested (``default`` when none), or ``unknown`` for a name the gateway does not offer.
        """
        began = time.monotonic()
        try:
            kernel = await start
        except BaseException as error:
            spec = "unknown" if isinstance(error, UnknownKernelSpec) else (requested or "default")
            self.metrics.start_ended(spec, _outcome(error))
            raise
        self.metrics.start_ended(getattr(kernel, "name", requested or "default"), "ready", time.monotonic() - began)
        return kernel

    def launch_failed(self, kernel: Kernel, placement: Placement, error: GatewayError, *, first: bool) -> None:
        """A (re)launch of the kernel's pod failed with ``error`` (called by the pod steps, once per failure)."""
        reason = type(error).__name__ if type(error).__name__ != "KernelLaunchFailed" else "KernelNotAnswering"
        self.metrics.launch_failures.labels(reason).inc()
        gone_with_namespace = placement.owns_namespace and first
        cause = error.message.split(LOG_LINES_MARK, 1)[0]  # what the kernel printed is its user's, not the cluster's
        self._event(kernel, placement, WARNING, reason, f"Kernel {kernel.id} ({kernel.name}) could not be launched: "
                    f"{cause}", namespace_stays=not gone_with_namespace)

    def restarting(self, kernel: Kernel, *, automatic: bool = False, count: int = 0, limit: int = 0) -> None:
        """This replica restarts the kernel: asked by a client, or ``automatic`` (its pod died; ``count`` of ``limit``)."""
        self.metrics.kernel_restarts.labels("automatic" if automatic else "requested").inc()
        if automatic and kernel.placement is not None:
            self._event(kernel, kernel.placement, WARNING, "KernelRestarting",
                        f"The pod of kernel {kernel.id} ({kernel.name}) died; restarting the kernel "
                        f"({count} of {limit})", namespace_stays=True, pod_uid=_pod_uid(kernel))

    def given_up(self, kernel: Kernel, message: str) -> None:
        """The kernel died past its restart limit and is given up (its namespace goes with it when the gateway's)."""
        if kernel.placement is not None:
            self._event(kernel, kernel.placement, WARNING, "KernelGivenUp", f"Kernel {kernel.id} ({kernel.name}): "
                        f"{message}", namespace_stays=not kernel.placement.owns_namespace)

    def culled(self, kernel: Kernel, idle_seconds: int) -> None:
        """The lease holder culls the kernel, idle for ``idle_seconds`` (called just before its shutdown)."""
        self.metrics.kernel_culls.inc()
        if kernel.placement is not None:
            self._event(kernel, kernel.placement, NORMAL, "KernelCulled",
                        f"Kernel {kernel.id} ({kernel.name}) was idle for {idle_seconds} s; shutting it down",
                        namespace_stays=not kernel.placement.owns_namespace, pod_uid=_pod_uid(kernel))

    def _event(self, kernel: Kernel, placement: Placement, type_: str, reason: str, message: str, *,
               namespace_stays: bool, pod_uid: str = "") -> None:
        """Queue an event about the kernel's pod (``pod_uid`` when the event is about one pod of the kernel's),
        or about its record when the pod's namespace goes with the kernel."""
        if self.events is None:
            return
        if namespace_stays:
            subject = ObjectRef("Pod", placement.namespace, placement.pod_name, uid=pod_uid)
        else:
            subject = ObjectRef("Secret", self.gateway_namespace, record_name(kernel.id))
        self.events.record(subject, type_, reason, message)


def _outcome(error: BaseException) -> str:
    """How a start that raised ``error`` ended: refused (4xx), failed (5xx), cancelled (the gateway stopped)."""
    if isinstance(error, (asyncio.CancelledError, GatewayStopping)):
        return "cancelled"
    if isinstance(error, GatewayError) and error.status < 500:
        return "refused"
    return "failed"


def _pod_uid(kernel: Kernel) -> str:
    """The uid of the kernel's current (or last recorded) pod, "" when unknown."""
    if kernel.running is not None:
        return kernel.running.pod_uid
    pod = kernel.record.pod if kernel.record is not None else None
    return pod.uid if pod is not None else ""
