"""The RBAC a deployed gateway runs with, applied to a simulated cluster.

What an operator applies before starting the gateway: the gateway's namespace
and service account ``enterprise-gateway-sa``, the ClusterRole
``enterprise-gateway-controller`` bound to it cluster-wide, the Role
``enterprise-gateway`` bound to it in its own namespace, and the
``kernel-controller`` ClusterRole that the gateway binds in each kernel
namespace it creates.  The rules are read from
``manifests/enterprise-gateway.yaml`` (:mod:`fakes.manifests`), so the
simulated cluster grants exactly what operators deploy.

Used by the embedded simulated cluster of ``kernelgate serve`` (through
``gateway.app``) and by the provisioner, kernel service and HTTP tests, so
that all of them exercise the same permissions.
"""

from __future__ import annotations

from typing import Any

from fakes.manifests import GATEWAY_ROLE, gateway_rules, kernel_rules, namespace_rules
from gateway.cluster.interface import AlreadyExists, Cluster

RBAC = "rbac.authorization.k8s.io"
GATEWAY_ACCOUNT = "enterprise-gateway-sa"
GATEWAY_CLUSTER_ROLE = "enterprise-gateway-controller"
KERNEL_CLUSTER_ROLE = "kernel-controller"

GATEWAY_RULES: list[dict[str, Any]] = gateway_rules()
"""What the gateway's service account may do: the manifests' ``enterprise-gateway-controller`` ClusterRole."""

NAMESPACE_RULES: list[dict[str, Any]] = namespace_rules()
"""What the gateway's service account may do in its own namespace: the manifests' ``enterprise-gateway`` Role."""

KERNEL_RULES: list[dict[str, Any]] = kernel_rules()
"""The manifests' ``kernel-controller`` ClusterRole, bound in each namespace the gateway creates."""


def cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules}


def gateway_binding(namespace: str, account: str = GATEWAY_ACCOUNT) -> dict[str, Any]:
    """The ClusterRoleBinding granting :data:`GATEWAY_RULES` to the gateway's service account."""
    return {
        "apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": GATEWAY_CLUSTER_ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": GATEWAY_CLUSTER_ROLE},
    }


def namespace_role_binding(namespace: str, account: str = GATEWAY_ACCOUNT) -> dict[str, Any]:
    """The RoleBinding granting :data:`NAMESPACE_RULES` to the gateway's service account in its namespace."""
    return {
        "apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": {"name": GATEWAY_ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": GATEWAY_ROLE},
    }


async def install_gateway_rbac(admin: Cluster, namespace: str, *, account: str = GATEWAY_ACCOUNT,
                               kernel_cluster_role: str = KERNEL_CLUSTER_ROLE) -> None:
    """Apply the gateway's namespace, service account, ClusterRoles, Role and bindings as the cluster admin.

    Objects that already exist are kept (the ``default`` namespace, say), as
    ``kubectl apply`` would leave an unchanged object.
    """
    rules = [dict(rule) for rule in GATEWAY_RULES]
    for rule in rules:
        if rule.get("resourceNames") == [KERNEL_CLUSTER_ROLE]:
            rule["resourceNames"] = [kernel_cluster_role]
    objects: list[tuple[str, dict[str, Any], str | None]] = [
        ("namespaces", {"metadata": {"name": namespace}}, None),
        ("serviceaccounts", {"metadata": {"name": account}}, namespace),
        ("clusterroles", cluster_role(GATEWAY_CLUSTER_ROLE, rules), None),
        ("clusterrolebindings", gateway_binding(namespace, account), None),
        ("clusterroles", cluster_role(kernel_cluster_role, KERNEL_RULES), None),
        ("roles", {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": GATEWAY_ROLE},
                   "rules": NAMESPACE_RULES}, namespace),
        ("rolebindings", namespace_role_binding(namespace, account), namespace),
    ]
    for resource, body, in_namespace in objects:
        try:
            await admin.create(resource, body, namespace=in_namespace)
        except AlreadyExists:
            pass
