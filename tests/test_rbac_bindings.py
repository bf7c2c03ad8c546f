"""RBAC decisions of the simulated cluster: which bindings grant what to whom, and whom their subjects name."""

from __future__ import annotations

import pytest

from fakes.auth.identity import ADMIN, UserInfo, service_account_user
from fakes.auth.rbac import Request, StaticRuleSource, authorize
from tests.rbacobjects import ALICE, KERNEL, KERNEL_CONTROLLER, allowed, binding, cluster_role, group, role, rule, user

GATEWAY = service_account_user("enterprise-gateway", "enterprise-gateway-sa")


def sa(namespace, name):
    subject = {"kind": "ServiceAccount", "name": name}
    if namespace is not None:
        subject["namespace"] = namespace
    return subject


# --- who may do what ---


def test_gateway_with_cluster_role_binding_creates_namespaces_and_pods_anywhere():
    source = StaticRuleSource([
        cluster_role("enterprise-gateway-controller", [rule(["create", "get", "list", "delete"], ["namespaces", "pods"])]),
        binding("enterprise-gateway-controller", "ClusterRole", "enterprise-gateway-controller",
                [sa("enterprise-gateway", "enterprise-gateway-sa")]),
    ])
    assert allowed(GATEWAY, source, "create", "namespaces")
    assert allowed(GATEWAY, source, "create", "pods", namespace="kernels-bob")
    assert allowed(GATEWAY, source, "list", "pods")  # all namespaces
    assert not allowed(GATEWAY, source, "update", "namespaces", name="kernels-bob")
    assert not allowed(KERNEL, source, "create", "namespaces")


def test_kernel_bound_by_role_binding_acts_only_in_its_own_namespace():
    source = StaticRuleSource([
        KERNEL_CONTROLLER,
        binding("kernel-controller", "ClusterRole", "kernel-controller", [sa("kernels-alice", "default")],
                namespace="kernels-alice"),
    ])
    assert allowed(KERNEL, source, "create", "pods", namespace="kernels-alice")
    assert allowed(KERNEL, source, "get", "pods", namespace="kernels-alice", name="k1", subresource="log")
    assert not allowed(KERNEL, source, "list", "pods", namespace="kernels-bob")
    assert not allowed(KERNEL, source, "list", "pods")  # across all namespaces
    assert not allowed(KERNEL, source, "watch", "pods")
    assert not allowed(KERNEL, source, "delete", "pods", namespace="default", name="k1")


def test_allow_reason_names_the_binding_role_and_subject():
    source = StaticRuleSource([
        KERNEL_CONTROLLER,
        binding("kc", "ClusterRole", "kernel-controller", [user("bob"), sa(None, "default")], namespace="kernels-alice"),
    ])
    decision = authorize(KERNEL, Request("list", "pods", namespace="kernels-alice"), source)
    assert decision.allowed
    assert decision.reason == ('RBAC: allowed by RoleBinding "kc/kernels-alice" of ClusterRole "kernel-controller" '
                               'to ServiceAccount "default/kernels-alice"')


def test_role_binding_never_grants_cluster_scoped_resources_or_paths():
    source = StaticRuleSource([
        cluster_role("everything", [rule(["*"], ["*"], ["*"]), {"verbs": ["*"], "nonResourceURLs": ["*"]}]),
        binding("all-in-ns1", "ClusterRole", "everything", [user("alice")], namespace="ns1"),
    ])
    assert allowed(ALICE, source, "delete", "secrets", namespace="ns1", name="s")
    assert not allowed(ALICE, source, "create", "namespaces")
    assert not allowed(ALICE, source, "list", "nodes")
    assert not allowed(ALICE, source, "get", path="/version")
    # A namespace object is "in" itself: the binding covers namespace ns1 but not ns2.
    assert allowed(ALICE, source, "get", "namespaces", name="ns1")
    assert not allowed(ALICE, source, "get", "namespaces", name="ns2")
    # ... and passing the namespace with a path does not make it namespaced.
    assert not allowed(ALICE, source, "get", path="/version", namespace="ns1")
    # A review asking about namespace ns1 at the cluster scope is answered for the cluster scope.
    assert not authorize(ALICE, Request("get", "namespaces", name="ns1"), source).allowed


def test_role_binding_uses_the_role_of_its_own_namespace():
    source = StaticRuleSource([
        role("ns1", "reader", [rule(["get"], ["configmaps"])]),
        role("ns2", "reader", [rule(["*"], ["*"])]),
        binding("r", "Role", "reader", [user("alice")], namespace="ns1"),
    ])
    assert allowed(ALICE, source, "get", "configmaps", namespace="ns1", name="c")
    assert not allowed(ALICE, source, "delete", "configmaps", namespace="ns1", name="c")
    assert not allowed(ALICE, source, "get", "configmaps", namespace="ns2", name="c")


def test_cluster_role_binding_to_a_role_grants_nothing():
    source = StaticRuleSource([
        role("ns1", "reader", [rule(["get"], ["configmaps"])]),
        binding("r", "Role", "reader", [user("alice")]),
    ])
    decision = authorize(ALICE, Request("get", "configmaps", namespace="ns1", name="c"), source)
    assert decision == decision.__class__(False, 'RBAC: role.rbac.authorization.k8s.io "reader" not found')


# --- subjects ---


def test_service_account_subject_without_namespace_means_the_binding_namespace():
    objects = [KERNEL_CONTROLLER, binding("kc", "ClusterRole", "kernel-controller", [sa(None, "default")],
                                          namespace="kernels-alice")]
    assert allowed(KERNEL, StaticRuleSource(objects), "create", "pods", namespace="kernels-alice")
    assert not allowed(service_account_user("kernels-bob", "default"), StaticRuleSource(objects),
                       "create", "pods", namespace="kernels-alice")
    # In a ClusterRoleBinding such a subject names nobody.
    cluster_wide = StaticRuleSource([KERNEL_CONTROLLER, binding("kc", "ClusterRole", "kernel-controller",
                                                                [sa(None, "default")])])
    assert not allowed(KERNEL, cluster_wide, "create", "pods", namespace="kernels-alice")


def test_service_account_subject_matches_only_its_own_account():
    source = StaticRuleSource([KERNEL_CONTROLLER, binding("kc", "ClusterRole", "kernel-controller",
                                                          [sa("kernels-alice", "default")])])
    assert allowed(KERNEL, source, "list", "pods")
    assert not allowed(service_account_user("kernels-alice", "other"), source, "list", "pods")
    assert not allowed(service_account_user("kernels", "alice:default"), source, "list", "pods")
    # A user that merely carries the service account's name as a plain user name is the same user to RBAC.
    assert allowed(UserInfo("system:serviceaccount:kernels-alice:default", ()), source, "list", "pods")


@pytest.mark.parametrize(("subject", "who", "expected"), [
    (group("system:serviceaccounts:kernels-alice"), KERNEL, True),
    (group("system:serviceaccounts:kernels-alice"), service_account_user("kernels-bob", "default"), False),
    (group("system:serviceaccounts"), GATEWAY, True),
    (group("system:serviceaccounts"), ALICE, False),
    (group("system:authenticated"), ALICE, True),
    (group("developers"), ALICE, True),
    (group("alice"), ALICE, False),
    (user("alice"), ALICE, True),
    (user("developers"), ALICE, False),
    ({"kind": "Robot", "name": "alice"}, ALICE, False),
])
def test_subjects_match_users_and_their_groups(subject, who, expected):
    source = StaticRuleSource([KERNEL_CONTROLLER, binding("kc", "ClusterRole", "kernel-controller", [subject])])
    assert allowed(who, source, "list", "pods") is expected


def test_system_masters_may_do_anything_without_any_binding():
    empty = StaticRuleSource([])
    assert authorize(ADMIN, Request("delete", "namespaces", name="kube-system"), empty).allowed
    assert authorize(ADMIN, Request("get", path="/metrics"), empty).allowed
    assert not authorize(ALICE, Request("get", path="/metrics"), empty).allowed
