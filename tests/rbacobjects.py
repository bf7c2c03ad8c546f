"""RBAC objects and principals for the tests of the simulated cluster's RBAC (``tests/test_rbac_*.py``).

Builders of roles, bindings, subjects and rules as the API server stores them,
a kernel's and a person's identities, and :func:`allowed`, the decision on a
request described as a client would send it.
"""

from __future__ import annotations

from fakes.auth.identity import UserInfo, service_account_user
from fakes.auth.rbac import Request, authorize, server_view

RBAC = "rbac.authorization.k8s.io"
KERNEL = service_account_user("kernels-alice", "default")
ALICE = UserInfo("alice", ("developers", "system:authenticated"))


def cluster_role(name, rules, labels=None, aggregate=None):
    role = {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": name, "labels": labels or {}},
            "rules": rules}
    if aggregate is not None:
        role["aggregationRule"] = {"clusterRoleSelectors": aggregate}
    return role


def role(namespace, name, rules):
    return {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": name, "namespace": namespace},
            "rules": rules}


def binding(name, role_kind, role_name, subjects, namespace=None):
    obj = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
        "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
        "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role_name},
        "subjects": subjects,
    }
    return obj


def user(name):
    return {"kind": "User", "apiGroup": RBAC, "name": name}


def group(name):
    return {"kind": "Group", "apiGroup": RBAC, "name": name}


def rule(verbs, resources, groups=("",), names=None):
    out = {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}
    if names is not None:
        out["resourceNames"] = list(names)
    return out


KERNEL_CONTROLLER = cluster_role("kernel-controller", [
    rule(["get", "list", "watch", "create", "delete"], ["pods", "services", "configmaps"]),
    rule(["get"], ["pods/log"]),
])


def allowed(who, source, verb, resource="", namespace="", name="", subresource="", api_group="", path=""):
    """Whether the API request the arguments describe is allowed, attributes derived as the server does."""
    request = server_view(Request(verb, resource, api_group, namespace, name, subresource, path))
    return authorize(who, request, source).allowed
