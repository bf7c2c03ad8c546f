"""RBAC rules of the simulated cluster as the real matcher reads them.

Resource names, subresources, API groups, verbs and URL paths; roles that are
missing or aggregated from others; the rules a user holds, and the attributes
the server derives from a request.
"""

from __future__ import annotations

from fakes.auth.rbac import Request, StaticRuleSource, authorize, rules_for, server_view
from tests.rbacobjects import ALICE, KERNEL_CONTROLLER, allowed, binding, cluster_role, group, role, rule, user


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
