"""RBAC privilege-escalation prevention on writes of roles and bindings.

A real API server refuses to store a Role, ClusterRole, RoleBinding or
ClusterRoleBinding that would give its author permissions it does not hold,
even when the author may create such objects (``pkg/registry/rbac/role``,
``clusterrole``, ``rolebinding``, ``clusterrolebinding`` ``/policybased/storage.go``,
``pkg/registry/rbac/escalation_check.go``):

* members of ``system:masters`` may write anything;
* a role may be written by whoever may ``escalate`` roles of that kind, a
  binding by whoever may ``bind`` the role it references;
* otherwise the author's own rules in that namespace must cover every rule
  granted (``component-helpers/auth/rbac/validation/policy_comparator.go``), and
  an ``aggregationRule`` needs ``*`` on everything.

The gateway relies on this: it binds each kernel namespace's service account to
the ``kernel-controller`` ClusterRole, which works only because its own role
lets it ``bind`` that ClusterRole (or holds everything the ClusterRole grants).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fakes.auth import rbac
from fakes.auth.bootstrap_roles import RBAC_GROUP
from fakes.auth.identity import SYSTEM_MASTERS, UserInfo
from gateway.cluster.interface import Forbidden, NotFound

_ROLE_KINDS = {"Role": "roles", "ClusterRole": "clusterroles"}
_FULL_AUTHORITY = [
    {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
    {"verbs": ["*"], "nonResourceURLs": ["*"]},
]


def check_rbac_write(user: UserInfo, resource: str, obj: Mapping, namespace: str | None, source: rbac.RuleSource,
                     old: Mapping | None = None) -> None:
    """Raise :class:`Forbidden` when storing ``obj`` would let ``user`` escalate its privileges.

    Called by the in-memory cluster on create (``old=None``) and update of
    ``roles``, ``clusterroles``, ``rolebindings`` and ``clusterrolebindings``,
    after the request itself was authorized and before the object is stored;
    other resources pass.  ``namespace`` is the request's (``None`` for the
    cluster-scoped kinds).  A binding whose role does not exist raises
    :class:`NotFound` unless the author may ``bind`` it.
    """
    if resource not in ("roles", "clusterroles", "rolebindings", "clusterrolebindings"):
        return
    if SYSTEM_MASTERS in user.groups:
        return
    if old is not None and _only_garbage_collection_fields_differ(obj, old):
        return
    name = (obj.get("metadata") or {}).get("name", "")
    namespace = (namespace or "") if resource in ("roles", "rolebindings") else ""

    if resource in ("roles", "clusterroles"):
        if rbac.authorize(user, rbac.Request("escalate", resource, RBAC_GROUP, namespace, name), source).allowed:
            return
        _confirm_no_escalation(user, namespace, list(obj.get("rules") or []), source, resource, name)
        if resource == "clusterroles" and (_aggregates(obj) or _aggregates(old)):
            if uncovered_rules(rbac.rules_for(user, namespace, source)[0], _FULL_AUTHORITY):
                raise Forbidden(_forbidden(resource, name, "must have cluster-admin privileges to use the aggregationRule"),
                                kind=resource, name=name or None, group=RBAC_GROUP)
        return

    role_ref = obj.get("roleRef") or {}
    ref_resource = _ROLE_KINDS.get(role_ref.get("kind", ""))
    if ref_resource is not None:
        bind = rbac.Request("bind", ref_resource, role_ref.get("apiGroup", ""), namespace, role_ref.get("name", ""))
        if rbac.authorize(user, bind, source).allowed:
            return
    rules = rbac.role_ref_rules(role_ref, namespace, source)
    if rules is None:
        missing = ref_resource or "roles"
        raise NotFound(f"{missing}.{RBAC_GROUP} {rbac.go_quote(role_ref.get('name', ''))} not found",
                       kind=missing, name=role_ref.get("name") or None, group=RBAC_GROUP)
    _confirm_no_escalation(user, namespace, rules, source, resource, name)


def uncovered_rules(owner_rules: Iterable[Mapping], rules: Iterable[Mapping]) -> list[dict]:
    """The parts of ``rules`` that ``owner_rules`` do not cover, each broken down to one verb and one object.

    As ``validation.Covers``: every rule is split into single verb / group /
    resource / name (or single URL) rules, each of which must be covered by one
    owner rule.
    """
    owners = list(owner_rules)
    return [sub for rule in rules for sub in _breakdown(rule) if not any(_covers(owner, sub) for owner in owners)]


def _confirm_no_escalation(user: UserInfo, namespace: str, rules: list[dict], source: rbac.RuleSource,
                           resource: str, name: str) -> None:
    owner_rules, errors = rbac.rules_for(user, namespace, source)
    missing = uncovered_rules(owner_rules, rules)
    if not missing:
        return
    lines = sorted({_compact_string(rule) for rule in _compact(missing)})
    groups = "[" + " ".join(rbac.go_quote(group) for group in user.groups) + "]"
    message = (f"user {rbac.go_quote(user.name)} (groups={groups}) is attempting to grant RBAC permissions "
               f"not currently held:\n" + "\n".join(lines))
    if errors:
        unique = list(dict.fromkeys(errors))
        message += "; resolution errors: [" + (unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]") + "]"
    raise Forbidden(_forbidden(resource, name, message), kind=resource, name=name or None, group=RBAC_GROUP)


def _forbidden(resource: str, name: str, detail: str) -> str:
    """``apierrors.NewForbidden`` for an RBAC resource."""
    if not name:
        return f"{resource}.{RBAC_GROUP} is forbidden: {detail}"
    return f"{resource}.{RBAC_GROUP} {rbac.go_quote(name)} is forbidden: {detail}"


def _aggregates(role: Mapping | None) -> bool:
    return bool(role and (role.get("aggregationRule") or {}).get("clusterRoleSelectors"))


def _only_garbage_collection_fields_differ(obj: Mapping, old: Mapping) -> bool:
    """Whether an update changes nothing but what garbage collection sets (``IsOnlyMutatingGCFields``)."""
    def without_gc_fields(o: Mapping) -> dict:
        copy = dict(o)
        metadata = dict(copy.get("metadata") or {})
        for key in ("ownerReferences", "finalizers", "resourceVersion", "managedFields"):
            metadata.pop(key, None)
        copy["metadata"] = metadata
        return copy

    return without_gc_fields(obj) == without_gc_fields(old)


def _breakdown(rule: Mapping) -> list[dict]:
    verbs = list(rule.get("verbs") or [])
    names = list(rule.get("resourceNames") or [])
    out: list[dict] = []
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in verbs:
                base = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                out.extend([{**base, "resourceNames": [n]} for n in names] if names else [base])
    for url in rule.get("nonResourceURLs") or []:
        out.extend({"nonResourceURLs": [url], "verbs": [verb]} for verb in verbs)
    return out


def _covers(owner: Mapping, sub: Mapping) -> bool:
    """Whether one owner rule covers a broken-down rule (``ruleCovers``)."""
    def has_all(field: str, wildcard: str | None = None) -> bool:
        have = set(owner.get(field) or [])
        return (wildcard is not None and wildcard in have) or set(sub.get(field) or []) <= have

    owner_resources = set(owner.get("resources") or [])
    resources_ok = "*" in owner_resources or all(
        resource in owner_resources or ("/" in resource and "*/" + resource.split("/", 1)[1] in owner_resources)
        for resource in sub.get("resources") or []
    )
    urls_ok = all(
        any(url == mine or (mine.endswith("*") and url.startswith(mine.rstrip("*")))
            for mine in owner.get("nonResourceURLs") or [])
        for url in sub.get("nonResourceURLs") or []
    )
    owner_names = owner.get("resourceNames") or []
    names_ok = not owner_names if not sub.get("resourceNames") else (not owner_names or has_all("resourceNames"))
    return has_all("verbs", "*") and has_all("apiGroups", "*") and resources_ok and urls_ok and names_ok


def _compact(rules: list[dict]) -> list[dict]:
    """Merge broken-down rules that differ only by verb (``CompactRules``)."""
    merged: dict[tuple, dict] = {}
    others: list[dict] = []
    for rule in rules:
        simple = (set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}
                  and len(rule.get("apiGroups") or []) == 1 and len(rule.get("resources") or []) == 1
                  and len(rule.get("resourceNames") or []) <= 1)
        if not simple:
            others.append(rule)
            continue
        key = (rule["apiGroups"][0], rule["resources"][0], tuple(rule.get("resourceNames") or []))
        if key in merged:
            merged[key]["verbs"] = merged[key]["verbs"] + list(rule.get("verbs") or [])
        else:
            merged[key] = {**rule, "verbs": list(rule.get("verbs") or [])}
    return others + list(merged.values())


def _compact_string(rule: Mapping) -> str:
    """A rule as escalation errors print it: ``{APIGroups:[""], Resources:["pods"], Verbs:["create"]}``."""
    parts = []
    for label, field in (("APIGroups", "apiGroups"), ("Resources", "resources"),
                         ("NonResourceURLs", "nonResourceURLs"), ("ResourceNames", "resourceNames"),
                         ("Verbs", "verbs")):
        if rule.get(field):
            parts.append(f"{label}:[" + " ".join(rbac.go_quote(v) for v in rule[field]) + "]")
    return "{" + ", ".join(parts) + "}"
