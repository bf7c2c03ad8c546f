"""The Kubernetes provisioner: kernels launched as pods, watched, signalled, stopped.

One :class:`PodProvisioner` per gateway: the composition root (``gateway.app``)
creates it over the cluster, the started informer of kernel pods and the started
response listener, and calls :meth:`~PodProvisioner.close` at shutdown once the
kernel service has stopped; the kernel service drives it (launch, stop, signal,
release, deaths).  Its cluster reads go through the informer (one watch over
every kernel pod) and its writes through the cluster interface, so an idle
kernel costs the API server nothing.

A launch: choose the placement (``gateway.provisioner.placement``), build the
pod from the kernelspec's ``scripts/kernel-pod.yaml`` (``gateway.provisioner.podbuild``,
before anything is created, so a bad request leaves nothing), create the
namespace and role binding when the gateway owns the namespace, register with
the response listener, create the pod, then wait for the pod's IP and the
launcher's connection info (``gateway.provisioner.launchwait``).  A pod that
cannot start (``podstate``) fails the launch at once; otherwise the launch
times out after ``LaunchRequest.timeout``.  Whatever ends a launch early (an
error, the timeout, cancellation of the launching task), everything that
launch created is deleted before the error propagates.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

from gateway.aio import OwnedTasks, shielded
from gateway.cluster.informer import Informer, InformerStopped
from gateway.cluster.interface import AlreadyExists, Cluster, ClusterError
from gateway.cluster.resources import TERMINAL_POD_PHASES
from gateway.filewatch import FolderWatch
from gateway.objects import KernelObjects, owned_by
from gateway.objects.labels import KERNEL_ID_LABEL
from gateway.objects.record import RecordPlacement
from gateway.observability.logs import kernel_extra

from . import comm
from .apicalls import delete_quietly, launch_error, remaining
from .base import KernelProvisioner
from .cleanup import Created
from .errors import LaunchConflict, LaunchError, LaunchTimeout, MissingServiceAccount
from .launchwait import LaunchWait
from .leftovers import PodLife, collect_kernel_objects, pod_life, pod_still_exists
from .model import LaunchRequest, Placement, ProvisionerSettings, RunningKernel
from .placement import (
    check_existing_namespace,
    create_kernel_namespace,
    plan_placement,
    recorded_placement,
    release_placement,
    restore_kernel_namespace,
    service_account_appears,
)
from .podbuild import GATEWAY_NAMESPACE_ANNOTATION, PodBuilder
from .podlog import log_tail
from .podstate import PodProgress, phase
from .policy import check_requested_image
from .response import SOURCE_IP_LATER, PendingResponse, ResponseListener

log = logging.getLogger("gateway.provisioner")

STOP_WAIT_SECONDS = 10.0
"""How long :meth:`PodProvisioner.stop` waits for the pod to go, beyond its grace period."""
COMM_TIMEOUT = 5.0

_COMPANION_RESOURCES = {"Service": "services", "ConfigMap": "configmaps", "Secret": "secrets",
                        "PersistentVolumeClaim": "persistentvolumeclaims"}


class PodProvisioner(KernelProvisioner):
    """Launches kernels as pods and follows them (see the module docstring).

    ``pods`` is the started informer of kernel pods (label selector
    ``app=enterprise-gateway,component=kernel``, all namespaces); ``responses``
    the started response listener.  Both belong to its creator, which starts
    and stops them; the provisioner owns only the clean-ups of failed launches.
    ``watch`` (also its creator's) lets it keep each kernelspec's pod template
    between launches until the template's folder changes.
    """

    def __init__(
        self, cluster: Cluster, pods: Informer, responses: ResponseListener, settings: ProvisionerSettings,
        *, watch: FolderWatch | None = None,
    ) -> None:
        self._cluster = cluster
        self._pods = pods
        self._responses = responses
        self._settings = settings
        self._builder = PodBuilder(responses, settings, watch)
        self._running: dict[str, str] = {}  # kernel id -> uid of its pod, for kernels launched and not stopped
        self._located: dict[str, tuple[str, str]] = {}  # kernel id -> (namespace, pod name), for pod_phase
        self._cleanups = OwnedTasks("provisioner clean-up")

    # ------------------------------------------------------------------ launch

    def plan(self, request: LaunchRequest) -> Placement:
        """The placement of a kernel's first launch, chosen before anything is created (no I/O).

        Called by the kernel service, which records it before launching with ``prepare=True``.
        Raises :class:`InvalidLaunch` or :class:`LaunchForbidden` for a request it cannot place,
        or whose ``KERNEL_IMAGE`` the operator does not allow.
        """
        check_requested_image(request, self._settings)
        return plan_placement(request, self._settings)

    def record_placement(self, request: LaunchRequest, placement: Placement) -> RecordPlacement:
        """How the kernel's record describes ``placement``: its namespace mode and what the first launch creates."""
        return recorded_placement(request, placement, self._settings)

    async def launch(self, request: LaunchRequest, placement: Placement | None = None, *,
                     prepare: bool | None = None) -> RunningKernel:
        """Start kernel ``request.kernel_id`` and return it once its launcher has called back.

        Called by the kernel service to start a kernel (``placement`` ``None``:
        the placement is chosen; or the placement :meth:`plan` chose, with
        ``prepare``: in the default mode its namespace and role binding are
        created) and to restart one (the placement of its first launch, reused;
        of a namespace the gateway owns, what someone else deleted meanwhile is
        created again; a previous pod of the kernel still present is deleted
        first).

        Raises a :class:`~gateway.provisioner.errors.LaunchError` naming the
        cause; by then everything this call created is gone again.
        """
        deadline = asyncio.get_running_loop().time() + request.timeout
        kernel_id = request.kernel_id
        created = Created(kernel_id)
        pending: PendingResponse | None = None
        try:
            first = placement is None if prepare is None else prepare
            if placement is None:
                placement = self.plan(request)
            objects = await self._builder.build(request, placement)
            self._located[kernel_id] = (placement.namespace, placement.pod_name)
            if not first:
                await self._remove_previous_pod(kernel_id, placement, deadline)
            if first and placement.owns_namespace:
                await create_kernel_namespace(
                    self._cluster, placement, kernel_id, self._settings.kernel_cluster_role, created, deadline
                )
            elif placement.owns_namespace:
                await restore_kernel_namespace(
                    self._cluster, placement, kernel_id, self._settings.kernel_cluster_role, created, deadline
                )
            else:
                await check_existing_namespace(self._cluster, placement, self._settings, deadline)
            try:
                pending = self._responses.expect(kernel_id, source_ip=SOURCE_IP_LATER, timeout=remaining(deadline))
            except ValueError:
                raise LaunchConflict(f"kernel {kernel_id} is being launched already") from None
            pod = await self._create_objects(objects, placement, created, deadline)
            progress = PodProgress(placement.namespace, placement.pod_name, pod["metadata"]["uid"])
            chosen = request.env.get("KERNEL_IMAGE") or ""
            wait = LaunchWait(self._pods, self._cluster, progress, timeout=request.timeout, deadline=deadline,
                              client_image=chosen if chosen != request.spec.image else "")
            connection = await wait.connection_info(pending)
        except BaseException as exc:
            if pending is not None:
                pending.cancel()
            undone = await self._undo(created)
            failure = launch_error(exc, f"launching kernel {kernel_id}") if isinstance(exc, ClusterError) else exc
            if isinstance(failure, LaunchError):
                failure.left_behind = not undone  # the kernel service then keeps the record for the lease holder
            if failure is exc:
                raise
            raise failure from exc
        ip = progress.pod_ip() or connection.ip
        self._running[kernel_id] = progress.uid
        log.info("kernel %s running in pod %s/%s at %s", kernel_id, placement.namespace, placement.pod_name, ip)
        return RunningKernel(placement=placement, connection=connection, pod_ip=ip, pod_uid=progress.uid)

    async def _create_objects(
        self, objects: KernelObjects, placement: Placement, created: Created, deadline: float
    ) -> dict[str, Any]:
        """Create the pod, then its companions owned by it; each recorded in ``created``."""
        namespace, name = placement.namespace, placement.pod_name
        try:
            try:
                pod = await created.create(self._cluster, "pods", objects.pod, namespace=namespace, deadline=deadline)
            except MissingServiceAccount as missing:
                if not self._account_appears(placement, missing):
                    raise
                if not await service_account_appears(self._cluster, namespace, missing.account, deadline):
                    raise LaunchTimeout(f"service account {missing.account} did not appear in the new namespace "
                                        f"{namespace} in time") from None
                pod = await created.create(self._cluster, "pods", objects.pod, namespace=namespace, deadline=deadline)
        except AlreadyExists:
            raise LaunchConflict(f"pod {name} already exists in namespace {namespace}") from None
        for companion in owned_by(pod, objects.companions):
            resource = _COMPANION_RESOURCES[companion["kind"]]
            await created.create(self._cluster, resource, companion, namespace=namespace, deadline=deadline)
        return pod

    def _account_appears(self, placement: Placement, missing: MissingServiceAccount) -> bool:
        """Whether the account a pod was refused for is one a namespace the gateway made gets a moment later:
        ``default`` (the cluster's service-account controller) or ``EG_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME``
        (an operator's); any other cannot appear there, and the refusal stands (400)."""
        return (placement.owns_namespace and missing.namespace == placement.namespace
                and missing.account == placement.service_account
                and missing.account in ("default", self._settings.default_service_account))

    async def _remove_previous_pod(self, kernel_id: str, placement: Placement, deadline: float) -> None:
        """Before a restart: delete the kernel's earlier pod if it is still there, and wait until it is gone."""
        self._running.pop(kernel_id, None)  # its end is ours, not a death
        namespace, name = placement.namespace, placement.pod_name
        old = self._pods.get(namespace, name)
        if old is None:
            return
        meta = old.get("metadata") or {}
        if (meta.get("labels") or {}).get(KERNEL_ID_LABEL) != kernel_id:
            raise LaunchConflict(f"pod {name} in namespace {namespace} belongs to another kernel")
        uid = meta.get("uid")
        if not meta.get("deletionTimestamp"):
            await delete_quietly(self._cluster, "pods", name, namespace=namespace, grace_period_seconds=0)
        try:
            await self._pods.wait_for(
                lambda pod: pod is None or pod["metadata"].get("uid") != uid,
                namespace=namespace,
                name=name,
                timeout=remaining(deadline),
            )
        except asyncio.TimeoutError:
            raise LaunchTimeout(
                f"the kernel's previous pod {name} in namespace {namespace} did not go in time"
            ) from None

    async def _undo(self, created: Created) -> bool:
        """Delete what a failed launch created (called by :meth:`launch` before its error propagates).

        The deletion is a task of the provisioner's own: a further cancellation of the launch does
        not interrupt it, and :meth:`close` waits for it.  Returns whether nothing of it is left.
        """
        if not created:
            return True
        undo = self._cleanups.spawn(created.undo(self._cluster), f"undo the launch of kernel {created.kernel_id}")
        return await shielded(undo)

    # ------------------------------------------------------------------ after the launch

    async def stop(self, running: RunningKernel, *, grace_seconds: float) -> None:
        """Stop a kernel's pod: ask its launcher to shut down, delete the pod, wait until it is gone.

        Called by the kernel service at shutdown and before a restart.  Its end
        is not reported by :meth:`deaths`.  Never raises for a pod already gone.
        """
        placement = running.placement
        namespace, name = placement.namespace, placement.pod_name
        if self._running.get(running.kernel_id) == running.pod_uid:
            del self._running[running.kernel_id]
        pod = self._pods.get(namespace, name)
        alive = pod is not None and pod["metadata"].get("uid") == running.pod_uid and phase(pod) not in TERMINAL_POD_PHASES
        if alive and running.connection.comm_port:
            try:
                await comm.request_shutdown(running.connection, timeout=min(COMM_TIMEOUT, max(grace_seconds, 0.5)))
            except comm.CommError as exc:
                log.info("kernel %s: no shutdown over the comm port (%s); deleting its pod", running.kernel_id, exc)
        grace = max(0, math.ceil(grace_seconds))
        await delete_quietly(self._cluster, "pods", name, namespace=namespace, grace_period_seconds=grace)
        try:
            await self._pods.wait_for(
                lambda p: p is None or p["metadata"].get("uid") != running.pod_uid,
                namespace=namespace,
                name=name,
                timeout=grace + STOP_WAIT_SECONDS,
            )
        except asyncio.TimeoutError:
            log.warning("pod %s/%s of kernel %s still present after %ds", namespace, name, running.kernel_id, grace)
        except InformerStopped:
            pass

    async def release(self, placement: Placement) -> bool:
        """Delete the kernel's role binding and namespace if the gateway created them; whether nothing is left."""
        for kernel_id, located in list(self._located.items()):
            if located == (placement.namespace, placement.pod_name):
                del self._located[kernel_id]
        return await release_placement(self._cluster, placement, self._settings.kernel_cluster_role)

    async def signal(self, running: RunningKernel, signum: int) -> bool:
        """Send ``signum`` to the kernel through its launcher's comm port (interrupts).

        Returns whether the launcher confirmed; raises
        :class:`~gateway.provisioner.comm.CommError` when it cannot be reached.
        """
        return await comm.send_signal(running.connection, signum, timeout=COMM_TIMEOUT)

    async def log_tail(self, running: RunningKernel) -> str:
        """The kernel container's last log lines, its connection key hidden (``""`` when unreadable in time)."""
        placement = running.placement
        return await log_tail(self._cluster, placement.pod_name, placement.namespace, key=running.connection.key)

    def pod_phase(self, kernel_id: str) -> str | None:
        """The phase of the kernel's pod as the informer last saw it; ``None`` when there is no pod."""
        located = self._located.get(kernel_id)
        if located is not None:
            return phase(self._pods.get(*located))
        for pod in self._pods.items():
            if ((pod.get("metadata") or {}).get("labels") or {}).get(KERNEL_ID_LABEL) == kernel_id:
                return phase(pod)
        return None

    def adopt(self, running: RunningKernel) -> None:
        """Follow a kernel another replica launched (or relaunched): its pod's death is reported by :meth:`deaths`.

        Called by the kernel service when a kernel's record shows it running on a pod.
        """
        self._running[running.kernel_id] = running.pod_uid
        self._located[running.kernel_id] = (running.placement.namespace, running.placement.pod_name)

    def forget(self, kernel_id: str) -> None:
        """Stop reporting the kernel's pod as a death (a restart or shutdown elsewhere ends it)."""
        self._running.pop(kernel_id, None)

    def pod_life(self, placement: Placement, pod_uid: str) -> PodLife:
        """Whether pod ``pod_uid`` of the placement is alive, dead or unknown to the cache (no call)."""
        return pod_life(self._pods.get(placement.namespace, placement.pod_name), pod_uid)

    async def pod_exists(self, placement: Placement, pod_uid: str) -> bool:
        """Whether pod ``pod_uid`` still exists and has not ended, asked of the API (one ``get``).

        Called by the lease holder when its cache does not show a pod a record names, before
        concluding that the pod died (the cache may lag the record).
        """
        return await pod_still_exists(self._cluster, placement, pod_uid)

    def kernel_pods(self) -> list[dict[str, Any]]:
        """Every kernel pod a replica of this gateway launched, as the informer shows them (no call)."""
        namespace = self._settings.gateway_namespace
        return [pod for pod in self._pods.items()
                if ((pod.get("metadata") or {}).get("annotations") or {}).get(GATEWAY_NAMESPACE_ANNOTATION) == namespace]

    async def collect(self, kernel_id: str, placement: Placement) -> bool:
        """Delete what a launch or a kernel left behind: its namespace and role binding when owned, its pod.

        Called by the lease holder for a kernel whose launch or shutdown was abandoned, and
        for a pod with no record.  Only objects labelled with ``kernel_id`` are deleted, so a
        namespace of that name someone else made is left alone.  Never raises a cluster error;
        returns whether nothing of the kernel is left (``False``: call again later).
        """
        self._running.pop(kernel_id, None)
        self._located.pop(kernel_id, None)
        return await collect_kernel_objects(self._cluster, self._pods, kernel_id, placement,
                                            self._settings.kernel_cluster_role)

    async def deaths(self) -> AsyncIterator[str]:
        """Kernel ids whose running pod died on its own: Failed/Succeeded, or deleted by someone else.

        Pods launched here or adopted (:meth:`adopt`) and not stopped or
        forgotten since.  Each consumer gets every death from the moment it
        starts iterating, once per pod.  Launch failures and the ends
        :meth:`stop` and restarts bring about are not deaths.
        """
        reported: set[str] = set()
        async with self._pods.subscribe() as changes:
            async for event in changes:
                meta = event.object.get("metadata") or {}
                uid = str(meta.get("uid") or "")
                if uid in reported:
                    if event.type == "DELETED":
                        reported.discard(uid)
                    continue
                kernel_id = (meta.get("labels") or {}).get(KERNEL_ID_LABEL)
                if kernel_id is None or self._running.get(kernel_id) != uid:
                    continue
                if event.type == "DELETED" or meta.get("deletionTimestamp") or phase(event.object) in TERMINAL_POD_PHASES:
                    if event.type != "DELETED":
                        reported.add(uid)
                    log.warning("kernel %s: its pod %s/%s died", kernel_id, meta.get("namespace"), meta.get("name"),
                                extra=kernel_extra(kernel_id))
                    yield kernel_id

    async def close(self) -> None:
        """Wait for clean-ups still running after cancelled launches.

        Called by the composition root at gateway shutdown, after the kernel service
        stopped (which cancels the launches in progress).
        """
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)

