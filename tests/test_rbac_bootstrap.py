"""The simulated cluster's bootstrap RBAC policy: what any user, an anonymous caller, the node agent and
the admin, edit, view and cluster-admin roles may do on a fresh cluster."""

from __future__ import annotations

from fakes.auth.bootstrap_roles import UNAUTHENTICATED
from fakes.auth.identity import UserInfo, node_user
from fakes.auth.rbac import Request, StaticRuleSource, authorize, bootstrap_objects
from tests.rbacobjects import ALICE, KERNEL, RBAC, allowed, binding, group, user

BOOTSTRAP = StaticRuleSource(bootstrap_objects())


def test_every_authenticated_user_may_discover_the_api_and_review_itself():
    for path in ("/api", "/api/v1", "/apis", "/apis/apps/v1", "/version", "/healthz", "/livez", "/readyz",
                 "/openapi/v2"):
        assert allowed(ALICE, BOOTSTRAP, "get", path=path), path
    assert allowed(KERNEL, BOOTSTRAP, "create", "selfsubjectaccessreviews", api_group="authorization.k8s.io")
    assert allowed(KERNEL, BOOTSTRAP, "create", "selfsubjectrulesreviews", api_group="authorization.k8s.io")
    assert not allowed(ALICE, BOOTSTRAP, "get", path="/metrics")
    assert not allowed(ALICE, BOOTSTRAP, "list", "pods", namespace="default")
    assert not allowed(ALICE, BOOTSTRAP, "create", "subjectaccessreviews", api_group="authorization.k8s.io")


def test_anonymous_callers_see_only_public_info():
    anonymous = UserInfo("system:anonymous", (UNAUTHENTICATED,))
    assert allowed(anonymous, BOOTSTRAP, "get", path="/healthz")
    assert allowed(anonymous, BOOTSTRAP, "get", path="/version")
    assert not allowed(anonymous, BOOTSTRAP, "get", path="/api")
    assert not allowed(anonymous, BOOTSTRAP, "create", "selfsubjectaccessreviews", api_group="authorization.k8s.io")


def test_admin_edit_and_view_bound_in_a_namespace():
    source = StaticRuleSource([
        *bootstrap_objects(),
        binding("a", "ClusterRole", "admin", [user("alice")], namespace="team"),
        binding("e", "ClusterRole", "edit", [user("bob")], namespace="team"),
        binding("v", "ClusterRole", "view", [user("carol")], namespace="team"),
    ])
    alice, bob, carol = UserInfo("alice"), UserInfo("bob"), UserInfo("carol")
    for who in (alice, bob):
        assert allowed(who, source, "create", "pods", namespace="team")
        assert allowed(who, source, "get", "secrets", namespace="team", name="s")
        assert not allowed(who, source, "create", "pods", namespace="other")
    assert allowed(alice, source, "create", "rolebindings", api_group=RBAC, namespace="team")
    assert not allowed(bob, source, "create", "rolebindings", api_group=RBAC, namespace="team")
    assert allowed(carol, source, "get", "pods", namespace="team", name="p", subresource="log")
    assert allowed(carol, source, "get", "namespaces", name="team")
    assert not allowed(carol, source, "get", "secrets", namespace="team", name="s")
    assert not allowed(carol, source, "delete", "pods", namespace="team", name="p")
    assert not allowed(alice, source, "delete", "namespaces", name="team")


def test_node_agent_may_do_its_work_and_no_more():
    node = node_user("node-1")
    can = [
        ("list", "pods", "", "", "", ""),
        ("watch", "pods", "", "", "", ""),
        ("get", "pods", "", "ns1", "p", ""),
        ("delete", "pods", "", "ns1", "p", ""),
        ("update", "pods", "", "ns1", "p", "status"),
        ("patch", "pods", "", "ns1", "p", "status"),
        ("create", "pods", "", "ns1", "p", "binding"),
        ("create", "nodes", "", "", "", ""),
        ("patch", "nodes", "", "", "node-1", "status"),
        ("update", "nodes", "", "", "node-1", ""),
        ("create", "events", "", "ns1", "", ""),
        ("patch", "events", "", "ns1", "e", ""),
        ("update", "leases", "coordination.k8s.io", "kube-node-lease", "node-1", ""),
        ("create", "leases", "coordination.k8s.io", "kube-node-lease", "", ""),
        ("get", "configmaps", "", "ns1", "c", ""),
    ]
    for verb, resource, api_group, namespace, name, subresource in can:
        request = Request(verb, resource, api_group, namespace, name, subresource)
        assert authorize(node, request, BOOTSTRAP).allowed, request
    assert not allowed(node, BOOTSTRAP, "delete", "namespaces", name="ns1")
    assert not allowed(node, BOOTSTRAP, "update", "pods", namespace="ns1", name="p")
    assert not allowed(node, BOOTSTRAP, "create", "rolebindings", api_group=RBAC, namespace="ns1")


def test_bootstrap_objects_look_like_a_fresh_cluster():
    objects = bootstrap_objects()
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for name in ("cluster-admin", "admin", "edit", "view", "system:discovery", "system:public-info-viewer",
                 "system:basic-user", "system:node"):
        assert ("ClusterRole", name) in names
    assert all(o["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults" for o in objects)
    admin_binding = next(o for o in objects if o["kind"] == "ClusterRoleBinding"
                         and o["metadata"]["name"] == "cluster-admin")
    assert admin_binding["subjects"] == [group("system:masters")]
    assert admin_binding["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"}
    # The aggregated roles show the rules they grant, as after the aggregation controller ran.
    view = next(o for o in objects if o["metadata"]["name"] == "view")
    edit = next(o for o in objects if o["metadata"]["name"] == "edit")
    assert view["rules"] and all(r in edit["rules"] for r in view["rules"])
    # Each call returns fresh objects a cluster may store and mutate.
    objects[0]["metadata"]["name"] = "changed"
    assert bootstrap_objects()[0]["metadata"]["name"] == "cluster-admin"


def test_cluster_admin_binding_grants_everything_to_its_subjects():
    source = StaticRuleSource([*bootstrap_objects(),
                               binding("ops", "ClusterRole", "cluster-admin", [user("ops")])])
    ops = UserInfo("ops")
    assert allowed(ops, source, "delete", "namespaces", name="kube-system")
    assert allowed(ops, source, "get", path="/metrics")
    assert allowed(ops, source, "escalate", "clusterroles", api_group=RBAC, name="admin")
