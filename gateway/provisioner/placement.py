"""Where a kernel runs: choosing its namespace, preparing it at first launch, releasing it at the end.

Three modes, as Enterprise Gateway has them (its "Namespaces" documentation):

* ``KERNEL_NAMESPACE`` in the request: that namespace (and
  ``KERNEL_SERVICE_ACCOUNT_NAME``, default ``default``) is used as is; it must
  exist and be a kernel namespace an operator prepared
  (:mod:`gateway.provisioner.policy`); nothing is created in it but the pod,
  and nothing of it is deleted;
* ``EG_SHARED_NAMESPACE``: every kernel runs in the gateway's namespace;
* otherwise the gateway creates a namespace per kernel, named like the pod
  and labelled for the kernel, plus a RoleBinding named after
  ``EG_KERNEL_CLUSTER_ROLE`` granting that ClusterRole to the namespace's
  service account; it deletes both when the kernel is released, and creates
  again what someone else deleted meanwhile when the kernel is relaunched.

Called by :class:`~gateway.provisioner.pods.PodProvisioner`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from gateway.cluster.interface import AlreadyExists, Cluster, ClusterError, NotFound, WatchEvent
from gateway.objects import (
    is_dns1123_label,
    is_dns1123_subdomain,
    kernel_namespace,
    kernel_resource_name,
    kernel_role_binding,
)
from gateway.objects.labels import KERNEL_ID_LABEL
from gateway.objects.record import NamespaceMode, RecordPlacement

from .apicalls import api, delete_quietly, launch_error, remaining
from .cleanup import Created
from .errors import InvalidLaunch, LaunchConflict
from .model import LaunchRequest, Placement, ProvisionerSettings
from .policy import check_named_namespace, check_requested_placement

MAX_SERVICE_ACCOUNT_WATCHES = 3
"""Watch requests tried while waiting for a new namespace's service account (each stays open until the deadline)."""


def plan_placement(request: LaunchRequest, settings: ProvisionerSettings) -> Placement:
    """The placement of a kernel's first launch, from its request env and the settings (no I/O).

    Raises :class:`InvalidLaunch` for a ``KERNEL_NAMESPACE`` or
    ``KERNEL_SERVICE_ACCOUNT_NAME`` Kubernetes would refuse, and
    :class:`~gateway.provisioner.errors.LaunchForbidden` for the gateway's own
    namespace or service account (:func:`~gateway.provisioner.policy.check_requested_placement`).
    """
    pod_name = kernel_resource_name(request.username, request.kernel_id)
    namespace = request.env.get("KERNEL_NAMESPACE") or ""
    service_account = request.env.get("KERNEL_SERVICE_ACCOUNT_NAME") or settings.default_service_account
    if not is_dns1123_subdomain(service_account):
        raise InvalidLaunch(
            f"KERNEL_SERVICE_ACCOUNT_NAME={_shown(service_account)} is not a valid service account name"
        )
    if namespace:
        if not is_dns1123_label(namespace):
            raise InvalidLaunch(
                f"KERNEL_NAMESPACE={_shown(namespace)} is not a valid namespace name "
                "(at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)"
            )
        placement = Placement(namespace, service_account, owns_namespace=False, pod_name=pod_name)
    elif settings.shared_namespace:
        placement = Placement(settings.gateway_namespace, service_account, owns_namespace=False, pod_name=pod_name)
    else:
        placement = Placement(pod_name, service_account, owns_namespace=True, pod_name=pod_name)
    check_requested_placement(placement, settings, named_namespace=bool(namespace),
                              named_account=bool(request.env.get("KERNEL_SERVICE_ACCOUNT_NAME")))
    return placement


def recorded_placement(request: LaunchRequest, placement: Placement, settings: ProvisionerSettings) -> RecordPlacement:
    """``placement`` as the kernel's record holds it: the mode, and what a first launch creates for it."""
    if placement.owns_namespace:
        mode = NamespaceMode.OWN
    elif request.env.get("KERNEL_NAMESPACE"):
        mode = NamespaceMode.NAMED
    else:
        mode = NamespaceMode.SHARED
    return RecordPlacement(
        namespace=placement.namespace, mode=mode, service_account=placement.service_account,
        pod_name=placement.pod_name, created_namespace=placement.owns_namespace,
        created_role_binding=settings.kernel_cluster_role if placement.owns_namespace else "",
    )


def placement_of(recorded: RecordPlacement) -> Placement:
    """The placement a kernel's record describes (for a relaunch or release by any replica)."""
    return Placement(recorded.namespace, recorded.service_account, owns_namespace=recorded.created_namespace,
                     pod_name=recorded.pod_name)


async def create_kernel_namespace(
    cluster: Cluster, placement: Placement, kernel_id: str, cluster_role: str, created: Created, deadline: float
) -> None:
    """First launch with an owned namespace: create it and its role binding.

    Each object is recorded in ``created`` as soon as it exists.  A namespace
    of that name that already exists is not ours: :class:`LaunchConflict`.
    The namespace's service account is not awaited here: the pod's creation
    does (see :func:`service_account_appears`).
    """
    namespace = placement.namespace
    try:
        await created.create(cluster, "namespaces", kernel_namespace(namespace, kernel_id), namespace=None,
                             deadline=deadline)
    except AlreadyExists:
        raise LaunchConflict(f"namespace {namespace} already exists: kernel {kernel_id} may be running already") from None
    binding = kernel_role_binding(namespace, cluster_role, placement.service_account, kernel_id)
    await created.create(cluster, "rolebindings", binding, namespace=namespace, deadline=deadline)


async def restore_kernel_namespace(
    cluster: Cluster, placement: Placement, kernel_id: str, cluster_role: str, created: Created, deadline: float
) -> None:
    """A relaunch in the namespace the gateway created for the kernel: create again what was deleted meanwhile.

    Called at every restart of a kernel whose namespace the gateway owns.  Someone may have deleted
    the namespace while the kernel ran (and with it the role binding and the namespace's service
    account), or the role binding alone: what is missing is created again as at the first launch
    (and recorded in ``created``).  A namespace still being deleted can be neither used nor created
    again yet: :class:`LaunchConflict`, which the auto-restart tries again after a pause.  A namespace
    of that name that is not labelled for the kernel is another's: :class:`LaunchConflict` too.
    """
    namespace = placement.namespace
    try:
        found = await api(cluster.get("namespaces", namespace), what=f"reading namespace {namespace}", deadline=deadline)
    except NotFound:
        await create_kernel_namespace(cluster, placement, kernel_id, cluster_role, created, deadline)
        return
    meta = found.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        raise LaunchConflict(f"namespace {namespace} is being deleted")
    if (meta.get("labels") or {}).get(KERNEL_ID_LABEL) != kernel_id:
        raise LaunchConflict(f"namespace {namespace} belongs to another kernel")
    try:
        await api(cluster.get("rolebindings", cluster_role, namespace=namespace),
                  what=f"reading role binding {cluster_role} in namespace {namespace}", deadline=deadline)
    except NotFound:
        binding = kernel_role_binding(namespace, cluster_role, placement.service_account, kernel_id)
        await created.create(cluster, "rolebindings", binding, namespace=namespace, deadline=deadline)


async def check_existing_namespace(
    cluster: Cluster, placement: Placement, settings: ProvisionerSettings, deadline: float
) -> None:
    """A namespace the gateway does not own must exist, not be terminating, and hold the service account.

    Called at every launch and restart of a kernel in a namespace it does not
    own.  Outside the gateway's namespace (shared mode) the namespace is one a
    client named: it must also be a prepared kernel namespace
    (:func:`~gateway.provisioner.policy.check_named_namespace`).
    """
    namespace = placement.namespace
    try:
        found = await api(
            cluster.get("namespaces", namespace), what=f"reading namespace {namespace}", deadline=deadline
        )
    except NotFound:
        raise InvalidLaunch(
            f"namespace {namespace} does not exist (KERNEL_NAMESPACE must name an existing namespace)"
        ) from None
    if (found.get("metadata") or {}).get("deletionTimestamp"):
        raise InvalidLaunch(f"namespace {namespace} is being deleted")
    if namespace != settings.gateway_namespace:
        check_named_namespace(namespace, (found.get("metadata") or {}).get("labels") or {}, settings)
    account = placement.service_account
    try:
        await api(
            cluster.get("serviceaccounts", account, namespace=namespace),
            what=f"reading service account {account} in namespace {namespace}",
            deadline=deadline,
        )
    except NotFound:
        raise InvalidLaunch(f"service account {account} does not exist in namespace {namespace}") from None


async def release_placement(cluster: Cluster, placement: Placement, cluster_role: str) -> bool:
    """Delete the role binding and namespace of ``placement`` when the gateway created them; else nothing.

    Returns whether nothing of them is left: ``False`` when the namespace could not be deleted
    (the role binding goes with it, so it counts only through the namespace).
    """
    if not placement.owns_namespace:
        return True
    await delete_quietly(cluster, "rolebindings", cluster_role, namespace=placement.namespace)
    return await delete_quietly(cluster, "namespaces", placement.namespace)


async def service_account_appears(cluster: Cluster, namespace: str, name: str, deadline: float) -> bool:
    """Wait until service account ``namespace/name`` exists: one read, then watching.

    Called by the provisioner when the API refused a kernel's pod in a namespace the gateway
    created because its account was not there yet.  On a real cluster the service-account
    controller creates a namespace's ``default`` account shortly after the namespace, and pod
    admission itself waits for ``default`` (kubernetes plugin/pkg/admission/serviceaccount/
    admission.go, ``getServiceAccount``: up to 10 lookups 100-200 ms apart, only for
    ``default``), so a pod is refused only for an account that appears later still, such as
    one an operator's controller adds (``EG_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME``).  A watch
    without a resourceVersion first reports what exists, then changes.
    """
    try:
        await api(cluster.get("serviceaccounts", name, namespace=namespace),
                  what=f"reading service account {name} in namespace {namespace}", deadline=deadline)
        return True
    except NotFound:
        pass
    for _ in range(MAX_SERVICE_ACCOUNT_WATCHES):
        left = remaining(deadline)
        if left <= 0:
            return False
        stream = cluster.watch(
            "serviceaccounts",
            namespace=namespace,
            field_selector=f"metadata.name={name}",
            timeout_seconds=max(1, int(left)),
        )
        try:
            if await asyncio.wait_for(_exists_in(stream), left):
                return True
        except asyncio.TimeoutError:
            return False
        except ClusterError as exc:
            raise launch_error(exc, f"watching service account {name} in namespace {namespace}") from exc
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
    return False


async def _exists_in(stream: AsyncIterator[WatchEvent]) -> bool:
    async for event in stream:
        if event.type in ("ADDED", "MODIFIED"):
            return True
    return False


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 72 else text[:69] + "...'"
