"""The namespace the gateway creates for a kernel, and the role binding inside it.

By default Enterprise Gateway gives every kernel its own namespace, named like
the pod, and binds the ``EG_KERNEL_CLUSTER_ROLE`` ClusterRole (Helm's
``kernel-controller``) to the namespace's service account with a RoleBinding
named after the role.  The provisioner builds both with these functions only
when the gateway creates the namespace (no ``KERNEL_NAMESPACE``, no
``EG_SHARED_NAMESPACE``), and deletes them at shutdown.
"""

from __future__ import annotations

from typing import Any

from gateway.objects.labels import kernel_labels
from gateway.objects.names import is_dns1123_label, is_dns1123_subdomain

RBAC_API_GROUP = "rbac.authorization.k8s.io"


def kernel_namespace(name: str, kernel_id: str) -> dict[str, Any]:
    """A v1 Namespace ``name`` labelled for kernel ``kernel_id``.

    ``name`` is normally ``kernel_resource_name(username, kernel_id)``; it must
    be a DNS-1123 label, as the API server requires of namespaces.
    """
    if not is_dns1123_label(name):
        raise ValueError(f"namespace name {name!r} is not a DNS-1123 label")
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": kernel_labels(kernel_id)},
    }


def kernel_role_binding(namespace: str, cluster_role: str, service_account: str, kernel_id: str) -> dict[str, Any]:
    """A RoleBinding in ``namespace``, named ``cluster_role``, granting that ClusterRole to ``service_account``.

    The subject is the service account of the same namespace (``default``
    unless the request named another).  RBAC object names only have to be
    valid path segments (``ValidateRBACName``, pkg/apis/rbac/validation);
    service account names are DNS-1123 subdomains.
    """
    if not is_dns1123_label(namespace):
        raise ValueError(f"namespace {namespace!r} is not a DNS-1123 label")
    if not _is_path_segment_name(cluster_role):
        raise ValueError(f"cluster role name {cluster_role!r} cannot name a RoleBinding")
    if not is_dns1123_subdomain(service_account):
        raise ValueError(f"service account name {service_account!r} is not a DNS-1123 subdomain")
    return {
        "apiVersion": f"{RBAC_API_GROUP}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": cluster_role, "namespace": namespace, "labels": kernel_labels(kernel_id)},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
        "roleRef": {"apiGroup": RBAC_API_GROUP, "kind": "ClusterRole", "name": cluster_role},
    }


def _is_path_segment_name(name: str) -> bool:
    """``IsValidPathSegmentName`` (k8s.io/apimachinery/pkg/api/validation/path): not ``.``/``..``, no ``/`` or ``%``."""
    return bool(name) and name not in (".", "..") and "/" not in name and "%" not in name
