"""RBAC decisions and Forbidden messages of the simulated cluster, as gateway and kernel users meet them."""

from __future__ import annotations

import pytest

from fakes.auth.bootstrap_roles import UNAUTHENTICATED
from fakes.auth.identity import ADMIN, UserInfo, node_user, service_account_user
from fakes.auth.rbac import (
    Request,
    StaticRuleSource,
    authorize,
    bootstrap_objects,
    forbidden_message,
    rules_for,
    server_view,
)

RBAC = "rbac.authorization.k8s.io"
GATEWAY = service_account_user("enterprise-gateway", "enterprise-gateway-sa")
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


def sa(namespace, name):
    subject = {"kind": "ServiceAccount", "name": name}
    if namespace is not None:
        subject["namespace"] = namespace
    return subject


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


# --- rules ---


def one_rule_source(*rules):
    return StaticRuleSource([cluster_role("r", list(rules)), binding("r", "ClusterRole", "r", [user("alice")])])


def test_resource_names_limit_a_rule_to_named_objects():
    source = one_rule_source(rule(["get", "update", "list", "create", "delete"], ["configmaps"],
                                  names=["kernel-config"]))
    assert allowed(ALICE, source, "get", "configmaps", namespace="ns1", name="kernel-config")
    assert allowed(ALICE, source, "update", "configmaps", namespace="ns1", name="kernel-config")
    assert not allowed(ALICE, source, "get", "configmaps", namespace="ns1", name="other")
    assert not allowed(ALICE, source, "list", "configmaps", namespace="ns1")
    # A create is a POST to the collection: no name, even when the body names the object.
    assert not allowed(ALICE, source, "create", "configmaps", namespace="ns1", name="kernel-config")
    # A list narrowed to one name by field selector carries that name.
    assert allowed(ALICE, source, "list", "configmaps", namespace="ns1", name="kernel-config")
    # An access review is answered for its attributes as given, so asking about a named create says yes.
    review = Request("create", "configmaps", namespace="ns1", name="kernel-config")
    assert authorize(ALICE, review, source).allowed


def test_subresources_need_their_own_grant():
    pods_only = one_rule_source(rule(["get", "update"], ["pods"]))
    assert allowed(ALICE, pods_only, "get", "pods", namespace="ns1", name="p")
    assert not allowed(ALICE, pods_only, "get", "pods", namespace="ns1", name="p", subresource="log")
    assert not allowed(ALICE, pods_only, "update", "pods", namespace="ns1", name="p", subresource="status")

    log_only = one_rule_source(rule(["get"], ["pods/log"]))
    assert allowed(ALICE, log_only, "get", "pods", namespace="ns1", name="p", subresource="log")
    assert not allowed(ALICE, log_only, "get", "pods", namespace="ns1", name="p")


def test_subresource_wildcards_follow_the_real_matcher():
    every_status = one_rule_source(rule(["update"], ["*/status"]))
    assert allowed(ALICE, every_status, "update", "pods", namespace="ns1", name="p", subresource="status")
    assert allowed(ALICE, every_status, "update", "namespaces", name="ns1", subresource="status")
    assert not allowed(ALICE, every_status, "update", "pods", namespace="ns1", name="p")
    assert not allowed(ALICE, every_status, "update", "pods", namespace="ns1", name="p", subresource="binding")
    # "pods/*" is not a wildcard in the real ResourceMatches: it matches nothing a client sends.
    pods_star = one_rule_source(rule(["get"], ["pods/*"]))
    assert not allowed(ALICE, pods_star, "get", "pods", namespace="ns1", name="p", subresource="log")
    assert not allowed(ALICE, pods_star, "get", "pods", namespace="ns1", name="p")
    everything = one_rule_source(rule(["get"], ["*"]))
    assert allowed(ALICE, everything, "get", "pods", namespace="ns1", name="p", subresource="log")


def test_api_groups_and_verbs_with_wildcards():
    core = one_rule_source(rule(["list"], ["pods", "leases"]))
    assert allowed(ALICE, core, "list", "pods")
    assert not allowed(ALICE, core, "list", "leases", api_group="coordination.k8s.io")
    any_group = one_rule_source(rule(["*"], ["leases"], groups=["*"]))
    assert allowed(ALICE, any_group, "update", "leases", api_group="coordination.k8s.io", namespace="n", name="l")
    assert allowed(ALICE, any_group, "escalate", "leases")
    assert not allowed(ALICE, any_group, "get", "pods")


def test_non_resource_urls_exact_and_prefix():
    source = one_rule_source({"verbs": ["get"], "nonResourceURLs": ["/version", "/apis/*", "/healthz*"]})
    assert allowed(ALICE, source, "get", path="/version")
    assert not allowed(ALICE, source, "get", path="/version/")
    assert allowed(ALICE, source, "get", path="/apis/apps/v1")
    assert allowed(ALICE, source, "get", path="/apis/")
    assert not allowed(ALICE, source, "get", path="/apis")
    assert allowed(ALICE, source, "get", path="/healthz/etcd")
    assert not allowed(ALICE, source, "post", path="/version")
    # URL rules never grant resources, nor resource rules paths.
    assert not allowed(ALICE, source, "get", "version")
    assert not allowed(ALICE, one_rule_source(rule(["get"], ["*"], groups=["*"])), "get", path="/version")


def test_missing_role_grants_nothing_and_is_reported_but_other_bindings_still_apply():
    source = StaticRuleSource([
        KERNEL_CONTROLLER,
        binding("gone", "ClusterRole", "deleted-role", [user("alice")]),
        binding("gone-too", "Role", "deleted-role", [user("alice")], namespace="ns1"),
        binding("other", "ClusterRole", "deleted-role", [user("bob")]),
    ])
    decision = authorize(ALICE, Request("list", "pods", namespace="ns1"), source)
    assert not decision.allowed
    assert decision.reason == ('RBAC: [clusterrole.rbac.authorization.k8s.io "deleted-role" not found, '
                               'role.rbac.authorization.k8s.io "deleted-role" not found]')
    source.objects.append(binding("works", "ClusterRole", "kernel-controller", [user("alice")]))
    assert allowed(ALICE, source, "list", "pods", namespace="ns1")


def test_aggregated_cluster_role_follows_labelled_roles_as_they_change():
    aggregating = cluster_role("kernel-admin", [rule(["*"], ["secrets"])],
                               aggregate=[{"matchLabels": {"kernelgate.io/aggregate-to-kernel-admin": "true"}},
                                          {"matchExpressions": [{"key": "tier", "operator": "In",
                                                                 "values": ["kernels"]}]}])
    source = StaticRuleSource([aggregating, binding("ka", "ClusterRole", "kernel-admin", [user("alice")],
                                                    namespace="ns1")])
    # Its own rules are replaced by the aggregate, as the controller replaces them.
    assert not allowed(ALICE, source, "get", "secrets", namespace="ns1", name="s")
    source.objects.append(cluster_role("pods-part", [rule(["create"], ["pods"])],
                                       labels={"kernelgate.io/aggregate-to-kernel-admin": "true"}))
    source.objects.append(cluster_role("svc-part", [rule(["create"], ["services"])], labels={"tier": "kernels"}))
    source.objects.append(cluster_role("unlabelled", [rule(["create"], ["configmaps"])], labels={"tier": "web"}))
    assert allowed(ALICE, source, "create", "pods", namespace="ns1")
    assert allowed(ALICE, source, "create", "services", namespace="ns1")
    assert not allowed(ALICE, source, "create", "configmaps", namespace="ns1")


def test_aggregation_is_transitive_and_survives_cycles():
    source = StaticRuleSource([
        cluster_role("a", [], labels={"to-b": "1"}, aggregate=[{"matchLabels": {"to-a": "1"}}]),
        cluster_role("b", [], labels={"to-a": "1"}, aggregate=[{"matchLabels": {"to-b": "1"}}]),
        cluster_role("leaf", [rule(["get"], ["pods"])], labels={"to-b": "1"}),
        binding("a", "ClusterRole", "a", [user("alice")]),
    ])
    assert allowed(ALICE, source, "get", "pods", namespace="x", name="p")


def test_rules_for_lists_cluster_wide_and_namespace_rules():
    source = StaticRuleSource([
        KERNEL_CONTROLLER,
        role("ns1", "cm", [rule(["get"], ["configmaps"])]),
        binding("cm", "Role", "cm", [user("alice")], namespace="ns1"),
        binding("kc", "ClusterRole", "kernel-controller", [group("developers")]),
    ])
    everywhere, errors = rules_for(ALICE, "", source)
    assert everywhere == KERNEL_CONTROLLER["rules"] and errors == []
    in_ns1, _ = rules_for(ALICE, "ns1", source)
    assert in_ns1 == KERNEL_CONTROLLER["rules"] + [rule(["get"], ["configmaps"])]


def test_server_view_derives_attributes_as_the_url_would():
    assert server_view(Request("create", "pods", namespace="n", name="p")) == Request("create", "pods", namespace="n")
    assert server_view(Request("create", "pods", namespace="n", name="p", subresource="binding")).name == "p"
    assert server_view(Request("delete", "namespaces", name="n")).namespace == "n"
    assert server_view(Request("update", "namespaces", name="n", subresource="finalize")).namespace == "n"
    assert server_view(Request("watch", "namespaces", namespace="n", name="n")).namespace == ""
    assert server_view(Request("create", "namespaces", namespace="n", name="n")) == Request("create", "namespaces")
    assert server_view(Request("get", namespace="n", path="/version")) == Request("get", path="/version")


# --- Forbidden messages ---


@pytest.mark.parametrize(("who", "request_", "message"), [
    (service_account_user("ns1", "default"), Request("list", "pods", namespace="ns1"),
     'pods is forbidden: User "system:serviceaccount:ns1:default" cannot list resource "pods" in API group "" '
     'in the namespace "ns1"'),
    (ALICE, Request("get", "pods", namespace="ns1", name="p1", subresource="log"),
     'pods "p1" is forbidden: User "alice" cannot get resource "pods/log" in API group "" in the namespace "ns1"'),
    (UserInfo("u"), Request("create", "namespaces", name="kernels-u"),
     'namespaces is forbidden: User "u" cannot create resource "namespaces" in API group "" at the cluster scope'),
    (UserInfo("u"), Request("get", path="/metrics"), 'forbidden: User "u" cannot get path "/metrics"'),
    (UserInfo("u", ()), Request("get", path="/version"), 'forbidden: User "u" cannot get path "/version"'),
    (UserInfo("u"), Request("create", "rolebindings", RBAC, "ns1"),
     'rolebindings.rbac.authorization.k8s.io is forbidden: User "u" cannot create resource "rolebindings" '
     'in API group "rbac.authorization.k8s.io" in the namespace "ns1"'),
    (UserInfo("u"), Request("update", "leases", "coordination.k8s.io", "kube-node-lease", "n1"),
     'leases.coordination.k8s.io "n1" is forbidden: User "u" cannot update resource "leases" '
     'in API group "coordination.k8s.io" in the namespace "kube-node-lease"'),
    (UserInfo("u"), Request("get", "namespaces", name="ns2"),
     'namespaces "ns2" is forbidden: User "u" cannot get resource "namespaces" in API group "" '
     'in the namespace "ns2"'),
    (UserInfo("u"), Request("list", "pods"),
     'pods is forbidden: User "u" cannot list resource "pods" in API group "" at the cluster scope'),
    (UserInfo('we"ird<u>'), Request("get", "pods", namespace="n", name='p"1'),
     'pods "p\\"1" is forbidden: User "we\\"ird&lt;u&gt;" cannot get resource "pods" in API group "" '
     'in the namespace "n"'),
])
def test_forbidden_messages_read_like_the_real_server(who, request_, message):
    request_ = server_view(request_)
    assert not authorize(who, request_, StaticRuleSource(bootstrap_objects())).allowed
    assert forbidden_message(who, request_) == message


def test_forbidden_message_carries_the_denial_reason():
    source = StaticRuleSource([binding("gone", "ClusterRole", "deleted-role", [user("alice")])])
    request = Request("list", "pods", namespace="ns1")
    decision = authorize(ALICE, request, source)
    assert forbidden_message(ALICE, request, decision.reason) == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "ns1": '
        'RBAC: clusterrole.rbac.authorization.k8s.io "deleted-role" not found')


# --- the bootstrap policy ---


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
