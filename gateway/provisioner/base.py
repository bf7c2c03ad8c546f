"""What the kernel service needs of a provisioner: the interface it is written against.

The kernel service (:mod:`gateway.kernels`) launches, watches, signals and stops kernels only
through a :class:`KernelProvisioner`, as jupyter_client's ``KernelManager`` drives a
``KernelProvisionerBase``.  :class:`gateway.provisioner.pods.PodProvisioner` is the
implementation: every kernel a pod.

The kernel service calls :meth:`~KernelProvisioner.launch`, :meth:`~KernelProvisioner.stop`
and :meth:`~KernelProvisioner.release` with the kernel's lock held
(:attr:`gateway.kernels.kernel.Kernel.lock`), so the provisioner never sees two launches or
stops of one kernel at once.  The values passed to and fro are those of
:mod:`gateway.provisioner.model`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import Any

from gateway.objects.record import RecordPlacement

from .leftovers import PodLife
from .model import LaunchRequest, Placement, RunningKernel


class KernelProvisioner(abc.ABC):
    """Launches kernels, follows them, signals and stops them, and releases where they ran."""

    @abc.abstractmethod
    def plan(self, request: LaunchRequest) -> Placement:
        """The placement of a kernel's first launch, chosen before anything is created (no I/O).

        Called by the kernel service, which writes it into the kernel's record before it
        launches.  Raises a :class:`~gateway.provisioner.errors.LaunchError` (4xx) for a
        request that cannot be placed.
        """

    @abc.abstractmethod
    def record_placement(self, request: LaunchRequest, placement: Placement) -> RecordPlacement:
        """``placement`` as the kernel's record describes it (mode, and what a first launch creates)."""

    @abc.abstractmethod
    async def launch(self, request: LaunchRequest, placement: Placement | None = None, *,
                     prepare: bool | None = None) -> RunningKernel:
        """Start kernel ``request.kernel_id`` and return it once its launcher has sent its connection info.

        Called by the kernel service for a kernel's first start (``placement`` ``None``: the
        provisioner chooses the placement; or the one :meth:`plan` chose, with ``prepare``; either
        way it prepares it, e.g. creates the kernel's namespace) and for each restart, manual or
        automatic, by any replica (the placement of the first launch, reused as is; a previous pod
        of the kernel still present is removed first).

        Returns the :class:`RunningKernel`: its placement, connection info and pod.  Raises a
        :class:`~gateway.provisioner.errors.LaunchError` naming the cause, with the HTTP status
        to answer; by then everything this call created is gone again, and so it is when the
        call is cancelled.  Unless the API refused a deletion: the error's ``left_behind`` says so,
        and the kernel service keeps the kernel's record for the lease holder to delete the rest.
        """

    @abc.abstractmethod
    async def stop(self, running: RunningKernel, *, grace_seconds: float) -> None:
        """Stop the kernel's pod and return once it is gone (or after a bounded wait).

        Called by the kernel service when a kernel is shut down, before it is restarted, and
        when a launched kernel did not answer.  The end it brings about is not reported by
        :meth:`deaths`.  Never raises for a pod already gone; the kernel service logs any other
        error and goes on.
        """

    @abc.abstractmethod
    async def release(self, placement: Placement) -> bool:
        """Delete what the first launch prepared for the kernel (its namespace and role binding, if created).

        Called by the kernel service once, after the kernel's last stop: when it is shut down
        or given up, or when its first launch failed after the placement was returned.  A
        placement the gateway did not create is left alone.  A deletion that fails is logged,
        not raised, so one failure does not stop the rest; the kernel service logs anything
        raised all the same and goes on.

        Returns whether nothing of it is left (deleted, being deleted, or never created);
        ``False`` when a deletion failed.  The kernel service then keeps the kernel's record,
        so that the lease holder deletes the rest (:meth:`collect`): nothing else could find it.
        """

    @abc.abstractmethod
    async def signal(self, running: RunningKernel, signum: int) -> bool:
        """Send ``signum`` to the kernel process through its launcher.

        Called by the kernel service to interrupt a kernel (``SIGINT`` or the kernelspec's
        ``EG_ALTERNATE_SIGINT``).  Returns whether the launcher confirmed; raises
        :class:`~gateway.provisioner.comm.CommError` when the launcher cannot be reached.
        """

    @abc.abstractmethod
    async def log_tail(self, running: RunningKernel) -> str:
        """The kernel container's last log lines, the connection key hidden; ``""`` when they cannot be read.

        Called by the kernel service when a kernel whose launcher called back does not answer,
        before its pod is deleted: the lines go into the launch's error.  Best effort, bounded in time.
        """

    @abc.abstractmethod
    def pod_phase(self, kernel_id: str) -> str | None:
        """The phase of the kernel's pod (``Pending``, ``Running``, ``Failed``...), ``None`` when it has none.

        Called by the kernel service before it stops a kernel, to decide whether the kernel
        may still answer a ``shutdown_request``.  Reads a cache: no cluster call, never raises.
        """

    @abc.abstractmethod
    def adopt(self, running: RunningKernel) -> None:
        """Follow a kernel running on a pod another replica launched: its death is reported by :meth:`deaths`."""

    @abc.abstractmethod
    def forget(self, kernel_id: str) -> None:
        """Stop reporting the kernel's current pod as a death (another replica restarts or stops it)."""

    @abc.abstractmethod
    def pod_life(self, placement: Placement, pod_uid: str) -> PodLife:
        """How the pod ``pod_uid`` of ``placement`` stands, as the cache shows it (no cluster call)."""

    @abc.abstractmethod
    async def pod_exists(self, placement: Placement, pod_uid: str) -> bool:
        """Whether pod ``pod_uid`` exists and runs, asked of the API (for a pod the cache does not show)."""

    @abc.abstractmethod
    def kernel_pods(self) -> list[dict[str, Any]]:
        """The kernel pods launched by this gateway's replicas, from the cache (for the leftovers' collection)."""

    @abc.abstractmethod
    async def collect(self, kernel_id: str, placement: Placement) -> bool:
        """Delete what an abandoned kernel left (its pod, its owned namespace and role binding), if labelled for it.

        Called by the kernel service for a kernel its replica did not stop itself, and by the
        lease holder's collection.  Returns whether nothing of the kernel is left (deleted, being
        deleted, or not the kernel's); ``False`` when a deletion or a read failed: the caller keeps
        what leads back to the kernel (its record, its pod) and calls again later.
        """

    @abc.abstractmethod
    def deaths(self) -> AsyncIterator[str]:
        """The ids of kernels whose running pod died on its own, as they die.

        Iterated by the kernel service's auto-restart (:mod:`gateway.kernels.restarts`) while
        this replica holds the duties.  A death is a pod that failed, exited or was deleted
        by someone else while it was the kernel's running pod, launched here or adopted
        (:meth:`adopt`): reported once per pod, and only to a consumer iterating at the time.  Launch failures and the ends :meth:`stop` and
        restarts bring about are not deaths.  Raises
        :class:`~gateway.cluster.informer.InformerStopped` once the provisioner can no longer
        follow pods; any other error may be retried by iterating again.
        """
