"""Writing roles and bindings cannot grant more than the author holds, as on a real API server."""

from __future__ import annotations

import pytest

from fakes.auth.escalation import check_rbac_write, uncovered_rules
from fakes.auth.identity import ADMIN, UserInfo, service_account_user
from fakes.auth.rbac import StaticRuleSource, bootstrap_objects
from fakes.memory import MemoryCluster
from fakes.state.store import Store
from gateway.cluster.interface import Forbidden, NotFound

RBAC = "rbac.authorization.k8s.io"
GATEWAY = service_account_user("enterprise-gateway", "enterprise-gateway-sa")
KERNEL_RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "create", "delete"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "create"]}]


def cluster_role(name, rules, aggregation=None):
    role = {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules}
    if aggregation is not None:
        role["aggregationRule"] = {"clusterRoleSelectors": aggregation}
    return role


def grant(name, rules, subject):
    """A ClusterRole and the ClusterRoleBinding giving it to ``subject`` everywhere."""
    return [cluster_role(name, rules),
            {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
             "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name}, "subjects": [subject]}]


def role_binding(namespace, role_kind, role_name, name="kernel-controller"):
    return {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}]}


GATEWAY_SUBJECT = {"kind": "ServiceAccount", "name": "enterprise-gateway-sa", "namespace": "enterprise-gateway"}


def test_gateway_may_bind_the_kernel_role_it_is_allowed_to_bind_without_holding_it():
    source = StaticRuleSource([
        *bootstrap_objects(),
        cluster_role("kernel-controller", KERNEL_RULES),
        *grant("enterprise-gateway-controller", [
            {"apiGroups": [RBAC], "resources": ["rolebindings"], "verbs": ["create"]},
            {"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["bind"],
             "resourceNames": ["kernel-controller"]},
        ], GATEWAY_SUBJECT),
    ])
    check_rbac_write(GATEWAY, "rolebindings", role_binding("kernels-alice", "ClusterRole", "kernel-controller"),
                     "kernels-alice", source)
    with pytest.raises(Forbidden) as refused:
        check_rbac_write(GATEWAY, "rolebindings", role_binding("kernels-alice", "ClusterRole", "admin", "a"),
                         "kernels-alice", source)
    message = refused.value.message
    assert message.startswith(
        'rolebindings.rbac.authorization.k8s.io "a" is forbidden: user "system:serviceaccount:enterprise-gateway:'
        'enterprise-gateway-sa" (groups=["system:serviceaccounts" "system:serviceaccounts:enterprise-gateway" '
        '"system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n')
    assert '\n{APIGroups:["rbac.authorization.k8s.io"], Resources:["roles"], Verbs:["get" "list" "watch" ' \
           '"create" "update" "patch" "delete" "deletecollection"]}' in message


def test_holding_every_permission_of_a_role_is_enough_to_bind_it():
    alice = UserInfo("alice")
    holds_all = StaticRuleSource([
        cluster_role("kernel-controller", KERNEL_RULES),
        *grant("alice", [{"apiGroups": ["*"], "resources": ["pods", "configmaps"], "verbs": ["*"]},
                         {"apiGroups": [RBAC], "resources": ["rolebindings"], "verbs": ["create"]}],
               {"kind": "User", "name": "alice"}),
    ])
    check_rbac_write(alice, "rolebindings", role_binding("ns1", "ClusterRole", "kernel-controller"), "ns1", holds_all)

    lacks_delete = StaticRuleSource([
        cluster_role("kernel-controller", KERNEL_RULES),
        *grant("alice", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "create"]},
                         {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
               {"kind": "User", "name": "alice"}),
    ])
    with pytest.raises(Forbidden) as refused:
        check_rbac_write(alice, "rolebindings", role_binding("ns1", "ClusterRole", "kernel-controller"), "ns1",
                         lacks_delete)
    assert refused.value.message == (
        'rolebindings.rbac.authorization.k8s.io "kernel-controller" is forbidden: user "alice" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["configmaps"], Verbs:["create"]}\n'
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}')


def test_roles_need_the_author_to_hold_their_rules_or_the_escalate_verb():
    bob = UserInfo("bob")
    objects = grant("bob", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
                    {"kind": "User", "name": "bob"})
    reader = {"kind": "Role", "metadata": {"name": "reader", "namespace": "ns1"},
              "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    writer = {"kind": "Role", "metadata": {"name": "writer", "namespace": "ns1"},
              "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete"]}]}
    check_rbac_write(bob, "roles", reader, "ns1", StaticRuleSource(objects))
    with pytest.raises(Forbidden, match=r'^roles.rbac.authorization.k8s.io "writer" is forbidden: .*\n'
                                        r'\{APIGroups:\[""\], Resources:\["pods"\], Verbs:\["delete"\]\}$'):
        check_rbac_write(bob, "roles", writer, "ns1", StaticRuleSource(objects))
    escalating = objects + grant("escalate", [{"apiGroups": [RBAC], "resources": ["roles"], "verbs": ["escalate"]}],
                                 {"kind": "User", "name": "bob"})
    check_rbac_write(bob, "roles", writer, "ns1", StaticRuleSource(escalating))


def test_an_aggregation_rule_needs_cluster_admin_powers():
    carol = UserInfo("carol")
    # Carol may create and update anything, but neither escalate nor use every verb and URL.
    source = StaticRuleSource(grant("carol", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["create", "update"]}],
                                    {"kind": "User", "name": "carol"}))
    aggregated = cluster_role("agg", [], aggregation=[{"matchLabels": {"team": "kernels"}}])
    with pytest.raises(Forbidden) as refused:
        check_rbac_write(carol, "clusterroles", aggregated, None, source)
    assert refused.value.message == ('clusterroles.rbac.authorization.k8s.io "agg" is forbidden: '
                                     'must have cluster-admin privileges to use the aggregationRule')
    # Removing the rule from an aggregated role is checked against the old object too.
    with pytest.raises(Forbidden):
        check_rbac_write(carol, "clusterroles", cluster_role("agg", []), None, source, old=aggregated)
    check_rbac_write(ADMIN, "clusterroles", aggregated, None, StaticRuleSource([]))


def test_binding_a_missing_role_is_not_found_unless_bind_is_allowed():
    dave = UserInfo("dave")
    with pytest.raises(NotFound, match='^clusterroles.rbac.authorization.k8s.io "gone" not found$'):
        check_rbac_write(dave, "clusterrolebindings",
                         {"metadata": {"name": "b"}, "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "gone"},
                          "subjects": []}, None, StaticRuleSource([]))
    may_bind = StaticRuleSource(grant("binder", [{"apiGroups": [RBAC], "resources": ["clusterroles"],
                                                  "verbs": ["bind"]}], {"kind": "User", "name": "dave"}))
    check_rbac_write(dave, "clusterrolebindings",
                     {"metadata": {"name": "b"}, "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "gone"},
                      "subjects": []}, None, may_bind)


def test_updates_that_only_touch_garbage_collection_fields_pass():
    erin = UserInfo("erin")
    binding = role_binding("ns1", "ClusterRole", "kernel-controller")
    source = StaticRuleSource([cluster_role("kernel-controller", KERNEL_RULES)])
    with pytest.raises(Forbidden):
        check_rbac_write(erin, "rolebindings", binding, "ns1", source)
    owned = {**binding, "metadata": {**binding["metadata"], "ownerReferences": [{"uid": "u1"}], "finalizers": ["x"]}}
    check_rbac_write(erin, "rolebindings", owned, "ns1", source, old=binding)


def test_other_resources_are_not_checked():
    check_rbac_write(UserInfo("frank"), "pods", {"metadata": {"name": "p"}}, "ns1", StaticRuleSource([]))


@pytest.mark.parametrize(("owner", "wanted", "covered"), [
    ({"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]},
     {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete"]}, True),
    ({"apiGroups": [""], "resources": ["*/status"], "verbs": ["update"]},
     {"apiGroups": [""], "resources": ["pods/status", "nodes/status"], "verbs": ["update"]}, True),
    ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
     {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}, False),
    ({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["a"]},
     {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["a"]}, True),
    ({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["a"]},
     {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}, False),
    ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["get"]},
     {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"], "resourceNames": ["d"]}, True),
    ({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}, {"verbs": ["get"], "nonResourceURLs": ["/apis/apps"]}, True),
    ({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}, {"verbs": ["get"], "nonResourceURLs": ["/api"]}, False),
])
def test_rule_coverage_follows_the_real_comparator(owner, wanted, covered):
    assert (uncovered_rules([owner], [wanted]) == []) is covered


async def test_the_in_memory_cluster_refuses_bindings_that_escalate():
    store = Store()
    admin = MemoryCluster(store)
    await admin.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}})
    await admin.create("clusterroles", cluster_role("kernel-controller", KERNEL_RULES))
    role, binding = grant("binding-writer", [{"apiGroups": [RBAC], "resources": ["rolebindings"],
                                              "verbs": ["create", "update", "get"]}], {"kind": "User", "name": "alice"})
    await admin.create("clusterroles", role)
    await admin.create("clusterrolebindings", binding)
    alice = MemoryCluster(store, UserInfo("alice"))
    wanted = role_binding("ns1", "ClusterRole", "kernel-controller")

    with pytest.raises(Forbidden, match="is attempting to grant RBAC permissions not currently held"):
        await alice.create("rolebindings", wanted, namespace="ns1")
    assert (await admin.list("rolebindings", namespace="ns1"))["items"] == []

    role["rules"].append({"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["bind"],
                          "resourceNames": ["kernel-controller"]})
    await admin.replace("clusterroles", "binding-writer", role)
    await alice.create("rolebindings", wanted, namespace="ns1")
    # Changing who a binding of a role alice may not bind grants is refused on update too.
    others = await admin.create("rolebindings", role_binding("ns1", "ClusterRole", "admin", "admins"), namespace="ns1")
    others["subjects"].append({"kind": "User", "name": "alice"})
    with pytest.raises(Forbidden):
        await alice.replace("rolebindings", "admins", others, namespace="ns1")
