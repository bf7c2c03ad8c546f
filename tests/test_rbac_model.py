"""RBAC decisions agree with a plain reference model of the rules, for arbitrary roles, bindings and requests.

The reference reads each binding literally: does a subject name the user, is the
binding in scope for the request, what rules does its role hold (aggregation
settled by iterating to a fixed point, as the controller converges), and does
any rule list the request's verb, group, resource and name.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes.auth.identity import ADMIN, UserInfo, node_user, service_account_user
from fakes.auth.rbac import Request, StaticRuleSource, authorize, rules_for
from tests import depth

RBAC = "rbac.authorization.k8s.io"
NAMESPACES = ["ns1", "ns2"]

USERS = [
    UserInfo("alice", ("devs", "system:authenticated")),
    UserInfo("bob", ("system:authenticated",)),
    service_account_user("ns1", "default"),
    service_account_user("ns2", "builder"),
    node_user("n1"),
]
USERS_AND_ADMIN = st.sampled_from([*USERS, *USERS, ADMIN])

SUBJECTS = [
    {"kind": "User", "name": "alice"},
    {"kind": "User", "name": "bob"},
    {"kind": "Group", "name": "devs"},
    {"kind": "Group", "name": "system:authenticated"},
    {"kind": "Group", "name": "system:serviceaccounts:ns1"},
    {"kind": "Group", "name": "system:serviceaccounts"},
    {"kind": "ServiceAccount", "name": "default"},
    {"kind": "ServiceAccount", "name": "default", "namespace": "ns1"},
    {"kind": "ServiceAccount", "name": "builder", "namespace": "ns2"},
    {"kind": "ServiceAccount", "name": "default", "namespace": "ns2"},
    {"kind": "Robot", "name": "alice"},
]

# Mostly roles that exist; cr3, r2 and a ClusterRoleBinding's Role never do.
CLUSTER_ROLE_BINDING_REFS = [{"kind": "ClusterRole", "name": name} for name in ("cr0", "cr1", "cr2", "cr0", "cr0", "cr3")]
CLUSTER_ROLE_BINDING_REFS.append({"kind": "Role", "name": "r0"})
ROLE_BINDING_REFS = [{"kind": "Role", "name": name} for name in ("r0", "r1", "r2", "r0")]
ROLE_BINDING_REFS += [{"kind": "ClusterRole", "name": name} for name in ("cr0", "cr1", "cr2", "cr0", "cr3")]


def small_list(values, min_size=0, max_size=2):
    return st.lists(st.sampled_from(values), min_size=min_size, max_size=max_size, unique=True)


def make_rule(verbs, groups, resources, names, urls):
    rule = {"verbs": verbs, "apiGroups": groups, "resources": resources}
    if names:
        rule["resourceNames"] = names
    if urls:
        rule["nonResourceURLs"] = urls
    return rule


RULES = st.lists(st.builds(
    make_rule,
    small_list(["get", "list", "create", "*"], min_size=1, max_size=3),
    small_list(["", "apps", "*"], min_size=1),
    small_list(["pods", "pods/log", "*/log", "pods/*", "*", "deployments", "secrets"], min_size=1, max_size=3),
    small_list(["a", "b"], max_size=1),
    small_list(["/version", "/apis/*", "/api*", "*", "/healthz"]),
), min_size=1, max_size=2)
LABELS = st.sampled_from([{}, {"agg": "x"}, {"agg": "y"}])
AGGREGATION = st.one_of(st.none(), st.builds(
    lambda selectors: {"clusterRoleSelectors": selectors},
    st.lists(st.sampled_from([{"matchLabels": {"agg": "x"}}, {"matchLabels": {"agg": "y"}}, {}]),
             min_size=1, max_size=2),
))


def make_cluster_role(name, labels, rules, aggregation):
    role = {"kind": "ClusterRole", "metadata": {"name": name, "labels": labels}, "rules": rules}
    if aggregation is not None:
        role["aggregationRule"] = aggregation
    return role


@st.composite
def rbac_objects(draw, user):
    """Roles and bindings; subjects lean towards ``user`` so that bindings often apply."""
    own = [{"kind": "User", "name": user.name}] + [{"kind": "Group", "name": group} for group in user.groups]
    if user.service_account:
        namespace, name = user.service_account
        own += [{"kind": "ServiceAccount", "name": name}, {"kind": "ServiceAccount", "name": name, "namespace": namespace}]
    subjects = st.lists(st.sampled_from(SUBJECTS + own), min_size=1, max_size=3)
    objects = [
        # cr0 always aggregates (cr1 often into it); cr2 is sometimes missing (cr3 always is).
        make_cluster_role("cr0", draw(LABELS), draw(RULES), draw(AGGREGATION.filter(bool))),
        make_cluster_role("cr1", {"agg": "x"}, draw(RULES), draw(AGGREGATION)),
    ]
    if draw(st.booleans()):
        objects.append(make_cluster_role("cr2", draw(LABELS), draw(RULES), draw(AGGREGATION)))
    for namespace in NAMESPACES:
        for name in ("r0", "r1"):
            objects.append({"kind": "Role", "metadata": {"name": name, "namespace": namespace}, "rules": draw(RULES)})
    for index in range(draw(st.integers(1, 2))):
        objects.append({"kind": "ClusterRoleBinding", "metadata": {"name": f"crb{index}"},
                        "roleRef": {"apiGroup": RBAC, **draw(st.sampled_from(CLUSTER_ROLE_BINDING_REFS))},
                        "subjects": draw(subjects)})
    for index in range(draw(st.integers(2, 3))):
        objects.append({"kind": "RoleBinding",
                        "metadata": {"name": f"rb{index}", "namespace": draw(st.sampled_from(NAMESPACES))},
                        "roleRef": {"apiGroup": RBAC, **draw(st.sampled_from(ROLE_BINDING_REFS))},
                        "subjects": draw(subjects)})
    return objects


@st.composite
def requests(draw, objects, user):
    """Requests as the server's request-info resolver produces them (a create has no name).

    Most are aimed at a rule of a binding that names ``user`` (its literal verb,
    group, resource, name or URL, and the binding's namespace), so that matches
    and near misses are common.
    """
    aim, namespace = {}, None
    applicable = [(binding, rules) for binding, rules in reference_binding_rules(user, None, objects) if rules]
    if applicable and draw(st.integers(0, 5)) < 5:
        binding, rules = draw(st.sampled_from(applicable))
        aim = draw(st.sampled_from(rules))
        namespace = binding["metadata"].get("namespace")

    # An aimed request takes the rule's literal values, except perhaps for one field.
    perturbed = draw(st.sampled_from([None, None, "verbs", "resources", "apiGroups", "resourceNames", "namespace"]))

    def pick(field, fallback):
        literal = [value for value in aim.get(field, []) if "*" not in value]
        return draw(st.sampled_from(literal if literal and field != perturbed else fallback))

    if (not aim and draw(st.integers(0, 3)) == 0) or (aim.get("nonResourceURLs") and not draw(st.integers(0, 2))):
        return Request(pick("verbs", ["get", "post"]),
                       path=pick("nonResourceURLs", ["/version", "/apis", "/apis/apps", "/api", "/healthz", "/metrics"]))
    verb = pick("verbs", ["get", "list", "create", "delete", "watch"])
    resource, _, subresource = pick("resources", ["pods", "deployments", "secrets", "pods/log",
                                                  "pods/status"]).partition("/")
    name = pick("resourceNames", ["", "a", "b"]) if verb != "create" or subresource else ""
    if namespace is None or perturbed == "namespace":
        namespace = draw(st.sampled_from(["", *NAMESPACES]))
    return Request(verb, resource, pick("apiGroups", ["", "apps"]), namespace, name, subresource)


# --- the reference model ---


def reference_rule_matches(rule, request):
    if "*" not in rule.get("verbs", []) and request.verb not in rule.get("verbs", []):
        return False
    if not request.resource:
        for url in rule.get("nonResourceURLs", []):
            if url == "*" or url == request.path or (url.endswith("*") and request.path.startswith(url.rstrip("*"))):
                return True
        return False
    groups, resources, names = rule.get("apiGroups", []), rule.get("resources", []), rule.get("resourceNames", [])
    wanted = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    return (
        ("*" in groups or request.api_group in groups)
        and ("*" in resources or wanted in resources
             or (request.subresource != "" and f"*/{request.subresource}" in resources))
        and (names == [] or request.name in names)
    )


def settled_cluster_role_rules(objects):
    """Every ClusterRole's rules once aggregation has converged (iterate until nothing changes)."""
    cluster_roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRole"}
    rules = {name: [] if "aggregationRule" in role else role["rules"] for name, role in cluster_roles.items()}
    changed = True
    while changed:
        changed = False
        for name, role in cluster_roles.items():
            if "aggregationRule" not in role:
                continue
            gathered = []
            for selector in role["aggregationRule"]["clusterRoleSelectors"]:
                for other, other_role in cluster_roles.items():
                    labels = other_role["metadata"]["labels"]
                    if other != name and all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
                        gathered += [r for r in rules[other] if r not in gathered]
            if sorted(map(repr, gathered)) != sorted(map(repr, rules[name])):
                rules[name] = gathered
                changed = True
    return rules


def reference_subject_names(subject, binding_namespace, user):
    if subject["kind"] == "User":
        return subject["name"] == user.name
    if subject["kind"] == "Group":
        return subject["name"] in user.groups
    if subject["kind"] == "ServiceAccount":
        namespace = subject.get("namespace", binding_namespace)
        return namespace != "" and user.name == f"system:serviceaccount:{namespace}:{subject['name']}"
    return False


def reference_binding_rules(user, namespace, objects):
    """(binding, rules) for every binding that names the user and applies in ``namespace``, CRBs first.

    ``namespace=None`` stands for any namespace (every RoleBinding applies).
    """
    settled = settled_cluster_role_rules(objects)
    out = []
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for binding in (o for o in objects if o["kind"] == kind):
            binding_namespace = binding["metadata"].get("namespace", "")
            if kind == "RoleBinding" and namespace is not None and (namespace == "" or binding_namespace != namespace):
                continue
            if not any(reference_subject_names(s, binding_namespace, user) for s in binding["subjects"]):
                continue
            ref = binding["roleRef"]
            if ref["kind"] == "ClusterRole" and ref["name"] in settled:
                out.append((binding, settled[ref["name"]]))
            elif ref["kind"] == "Role" and kind == "RoleBinding":
                for role in objects:
                    if (role["kind"] == "Role" and role["metadata"]["name"] == ref["name"]
                            and role["metadata"]["namespace"] == binding_namespace):
                        out.append((binding, role["rules"]))
    return out


def reference_granting_bindings(user, request, objects):
    return [binding for binding, rules in reference_binding_rules(user, request.namespace, objects)
            if any(reference_rule_matches(rule, request) for rule in rules)]


# --- the property ---


@pytest.mark.timeout(600)  # passing takes seconds; shrinking a counterexample can take minutes
def test_decisions_match_the_reference_model():
    seen = Counter()

    @settings(max_examples=depth.examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data(), USERS_AND_ADMIN)
    def check(data, user):
        objects = data.draw(rbac_objects(user))
        request = data.draw(requests(objects, user))
        source = StaticRuleSource(objects)
        decision = authorize(user, request, source)
        if "system:masters" in user.groups:
            assert decision.allowed
            seen["masters"] += 1
            return
        granting = reference_granting_bindings(user, request, objects)
        assert decision.allowed == bool(granting), (decision, granting)
        if granting:
            first = granting[0]
            display = first["metadata"]["name"]
            if first["kind"] == "RoleBinding":
                display += "/" + first["metadata"]["namespace"]
            assert decision.reason.startswith(f'RBAC: allowed by {first["kind"]} "{display}" of ')
            seen["allowed via " + first["kind"]] += 1
            seen["granted by a RoleBinding"] += any(b["kind"] == "RoleBinding" for b in granting)
            if any(o["kind"] == "ClusterRole" and "aggregationRule" in o
                   and o["metadata"]["name"] == first["roleRef"]["name"] for o in objects):
                seen["allowed via an aggregated role"] += 1
        else:
            seen["denied"] += 1
            if decision.reason:
                seen["denied with resolution errors"] += 1
        # The rules a SelfSubjectRulesReview lists are exactly those that decide.
        listed, _ = rules_for(user, request.namespace, source)
        assert any(reference_rule_matches(rule, request) for rule in listed) == decision.allowed

    check()
    # Both outcomes, and every way to an allow, really occurred: the agreement is not vacuous.
    assert seen["denied"] >= 20, seen
    for outcome in ("allowed via ClusterRoleBinding", "granted by a RoleBinding", "allowed via an aggregated role",
                    "denied with resolution errors"):
        assert seen[outcome] >= 5, seen
