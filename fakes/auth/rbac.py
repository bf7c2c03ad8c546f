"""The simulated cluster's RBAC authorizer.

The in-memory cluster (``fakes/state/store.py``, ``fakes/memory.py``) calls
:func:`authorize` for every request with the caller's :class:`UserInfo` and the
request's attributes, and answers a denial with :func:`forbidden_message`.
Roles and bindings are read from the cluster's own stored objects through a
:class:`RuleSource`, so a binding takes effect on the next request, as on a real
cluster.

Decisions follow the real authorizer chain of a kube-apiserver:

* members of ``system:masters`` are always allowed (the privileged-group
  authorizer that precedes RBAC, ``authorizerfactory.NewPrivilegedGroups``);
* otherwise ``plugin/pkg/auth/authorizer/rbac/rbac.go`` with the rule resolver of
  ``pkg/registry/rbac/validation/rule.go`` and the matchers of
  ``pkg/apis/rbac/v1/evaluation_helpers.go``: every ClusterRoleBinding applies
  everywhere, RoleBindings of namespace N apply only to requests in N, and a
  request is allowed as soon as one rule of one applicable binding matches it.

ClusterRoles with an ``aggregationRule`` get their rules from the ClusterRoles
their selectors match, computed on each request instead of by a controller
(``pkg/controller/clusterroleaggregation``), so there is no propagation delay.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from fakes.auth import bootstrap_roles
from fakes.auth.identity import SYSTEM_MASTERS, UserInfo

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class Request:
    """The authorization attributes of one API request (the real server's ``authorizer.Attributes``).

    Fill them as the real server's request-info resolver derives them from the
    URL (``k8s.io/apiserver/pkg/endpoints/request/requestinfo.go``):

    * ``resource`` is the plural (``"pods"``), ``""`` for a non-resource request,
      which is identified by ``path`` instead (``"/version"``, ``"/apis/apps"``);
    * ``namespace`` is ``""`` for cluster-scoped resources and for list/watch
      across all namespaces; a request on one namespace object
      (``/api/v1/namespaces/foo``) carries ``namespace="foo"``;
    * ``name`` is ``""`` for collection requests (list, watch, deletecollection,
      create); a list/watch with ``fieldSelector=metadata.name=X`` carries
      ``name="X"``.

    Callers that describe an operation rather than a URL (the in-memory
    cluster) pass their request through :func:`server_view`, which applies the
    last two conventions.  Access reviews are authorized with their attributes
    as given, as on a real server.
    """

    verb: str
    resource: str = ""
    api_group: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    path: str = ""

    @property
    def is_resource_request(self) -> bool:
        return bool(self.resource)


@dataclass(frozen=True)
class Decision:
    """The authorizer's answer.

    ``reason`` is the real RBAC authorizer's reason string: for an allow, the
    binding and role that allowed it (``RBAC: allowed by ClusterRoleBinding ...``);
    for a denial, ``""`` or the errors met while resolving roles
    (``RBAC: clusterrole.rbac.authorization.k8s.io "x" not found``), which the
    real server appends to its Forbidden message.  An allow for
    ``system:masters`` has no reason, as on a real server.
    """

    allowed: bool
    reason: str = ""


class RuleSource(Protocol):
    """Where the authorizer reads Roles, ClusterRoles and their bindings (wire-format dicts)."""

    def rbac_objects(self, resource: str, namespace: str | None) -> Iterable[dict]:
        """Objects of ``resource`` (roles, clusterroles, rolebindings, clusterrolebindings).

        ``namespace`` is ``None`` for the cluster-scoped ones and a namespace name
        for roles and rolebindings.
        """
        ...


class StaticRuleSource:
    """A :class:`RuleSource` over a fixed list of objects.

    For checks against the bootstrap policy alone and for tests; the cluster
    itself serves its stored objects.
    """

    _KINDS = {
        "roles": "Role",
        "clusterroles": "ClusterRole",
        "rolebindings": "RoleBinding",
        "clusterrolebindings": "ClusterRoleBinding",
    }

    def __init__(self, objects: Iterable[dict]) -> None:
        self.objects = list(objects)

    def rbac_objects(self, resource: str, namespace: str | None) -> Iterable[dict]:
        kind = self._KINDS[resource]
        return [
            obj for obj in self.objects
            if obj.get("kind") == kind and (namespace is None or _meta(obj).get("namespace") == namespace)
        ]


def server_view(request: Request) -> Request:
    """``request`` with the attributes the real server would derive from its URL.

    For requests that carry out an operation, not for access reviews.

    A create of a top-level object is a POST to the collection, so it has no
    name; a request naming one namespace object (get/update/patch/delete of
    ``namespaces/foo`` and its subresources) is in namespace ``foo`` while
    creating, listing and watching namespaces is cluster-scoped; a
    non-resource request has no namespace.
    """
    if not request.is_resource_request:
        return replace(request, namespace="") if request.namespace else request
    if request.verb == "create" and not request.subresource and request.name:
        request = replace(request, name="")
    if request.resource == "namespaces" and not request.api_group:
        # /api/v1/namespaces/foo[/status] is "in" namespace foo; the collection is cluster-scoped.
        namespace = request.name if request.verb not in ("list", "watch") else ""
        if namespace != request.namespace:
            request = replace(request, namespace=namespace)
    return request


def authorize(user: UserInfo, request: Request, source: RuleSource) -> Decision:
    """Whether ``user`` may make ``request``, given the RBAC objects ``source`` holds.

    Called by the in-memory cluster before every operation (with the
    attributes :func:`server_view` derives) and by SelfSubjectAccessReview /
    SubjectAccessReview (with the review's attributes as given, as a real
    server takes them).
    """
    if SYSTEM_MASTERS in user.groups:
        return Decision(True)
    resolver = _Resolver(source)
    for granted in resolver.bindings_for(user, request.namespace):
        if any(rule_allows(request, rule) for rule in granted.rules):
            return Decision(True, f"RBAC: allowed by {granted.description}")
    return Decision(False, _errors_reason(resolver.errors))


def rules_for(user: UserInfo, namespace: str, source: RuleSource) -> tuple[list[dict], list[str]]:
    """Every PolicyRule granted to ``user`` in ``namespace`` ("" for cluster-wide), and resolution errors.

    The answer of a SelfSubjectRulesReview (``kubectl auth can-i --list``);
    ``system:masters`` members get no extra rules here, as on a real server.
    """
    resolver = _Resolver(source)
    rules: list[dict] = []
    for granted in resolver.bindings_for(user, namespace):
        rules.extend(granted.rules)
    return rules, resolver.errors


def role_ref_rules(role_ref: Mapping, binding_namespace: str, source: RuleSource) -> list[dict] | None:
    """The rules a binding's ``roleRef`` grants, or ``None`` when the role does not exist.

    ``binding_namespace`` is ``""`` for a ClusterRoleBinding.  Used by the
    escalation check (:mod:`fakes.auth.escalation`) on binding writes.
    """
    return _Resolver(source)._role_ref_rules(role_ref, binding_namespace)


def forbidden_message(user: UserInfo, request: Request, reason: str = "") -> str:
    """The message of the 403 Status the real server sends when ``user`` may not make ``request``.

    As ``responsewriters.forbiddenMessage`` and ``apierrors.NewForbidden`` build it
    (``k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go``,
    ``k8s.io/apimachinery/pkg/api/errors/errors.go``); ``reason`` is the denial's
    :attr:`Decision.reason`, appended when not empty.
    """
    if not request.is_resource_request:
        detail = f"User {go_quote(user.name)} cannot {request.verb} path {go_quote(request.path)}"
    else:
        resource = request.resource + (f"/{request.subresource}" if request.subresource else "")
        scope = (f"in the namespace {go_quote(request.namespace)}" if request.namespace else "at the cluster scope")
        detail = (
            f"User {go_quote(user.name)} cannot {request.verb} resource {go_quote(resource)}"
            f" in API group {go_quote(request.api_group)} {scope}"
        )
    # The real server escapes HTML-significant characters of this part only.
    detail = detail.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if reason:
        detail = f"{detail}: {reason}"
    group_resource = f"{request.resource}.{request.api_group}" if request.api_group else request.resource
    if not group_resource:
        return f"forbidden: {detail}"
    if not request.name:
        return f"{group_resource} is forbidden: {detail}"
    return f"{group_resource} {go_quote(request.name)} is forbidden: {detail}"


def bootstrap_objects() -> list[dict]:
    """The ClusterRoles and ClusterRoleBindings of a fresh cluster (see :mod:`fakes.auth.bootstrap_roles`).

    Aggregated roles come with the rules the aggregation controller would have
    written into them, so reading ``clusterrole admin`` shows what it grants.
    """
    roles = bootstrap_roles.default_cluster_roles()
    by_name = {_meta(role)["name"]: role for role in roles}
    for role in roles:
        if role.get("aggregationRule") is not None:
            role["rules"] = aggregated_rules(role, by_name)
    return [*roles, *bootstrap_roles.default_cluster_role_bindings()]


# --- rule matching (pkg/apis/rbac/v1/evaluation_helpers.go, rbac.go RuleAllows) ---


def rule_allows(request: Request, rule: Mapping) -> bool:
    """Whether one PolicyRule (wire format) allows ``request``."""
    verbs = rule.get("verbs") or ()
    if "*" not in verbs and request.verb not in verbs:
        return False
    if not request.is_resource_request:
        return any(_url_matches(url, request.path) for url in rule.get("nonResourceURLs") or ())
    groups = rule.get("apiGroups") or ()
    if "*" not in groups and request.api_group not in groups:
        return False
    if not _resource_matches(rule.get("resources") or (), request.resource, request.subresource):
        return False
    names = rule.get("resourceNames") or ()
    # A rule limited to names never matches a request without one (create, list, watch of a collection).
    return not names or request.name in names


def _resource_matches(rule_resources: Iterable[str], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for candidate in rule_resources:
        if candidate == "*" or candidate == combined:
            return True
        # "*/scale" grants a subresource of every resource; "pods/*" is not a wildcard in the real matcher.
        if subresource and candidate == f"*/{subresource}":
            return True
    return False


def _url_matches(rule_url: str, path: str) -> bool:
    if rule_url == "*" or rule_url == path:
        return True
    return rule_url.endswith("*") and path.startswith(rule_url.rstrip("*"))


# --- subjects and bindings (pkg/registry/rbac/validation/rule.go) ---


def subject_applies(user: UserInfo, subject: Mapping, binding_namespace: str) -> bool:
    """Whether a binding subject names ``user``.

    A ServiceAccount subject without a namespace means the binding's own
    namespace; in a ClusterRoleBinding (``binding_namespace=""``) it names nobody.
    """
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user.name == f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"
    return False


@dataclass(frozen=True)
class _Granted:
    description: str
    rules: list[dict]


class _Resolver:
    """Walks the bindings that apply to a user, resolving their roles; remembers resolution errors."""

    def __init__(self, source: RuleSource) -> None:
        self.source = source
        self.errors: list[str] = []
        self._cluster_roles: dict[str, dict] | None = None

    def bindings_for(self, user: UserInfo, namespace: str) -> Iterator[_Granted]:
        """ClusterRoleBindings first, then (for a namespaced request) the RoleBindings of ``namespace``."""
        scopes: list[tuple[str, str | None]] = [("clusterrolebindings", None)]
        if namespace:
            scopes.append(("rolebindings", namespace))
        for resource, scope in scopes:
            binding_namespace = scope or ""
            for binding in self.source.rbac_objects(resource, scope):
                subject = next(
                    (s for s in binding.get("subjects") or () if subject_applies(user, s, binding_namespace)), None
                )
                if subject is None:
                    continue
                rules = self._role_ref_rules(binding.get("roleRef") or {}, binding_namespace)
                if rules is not None:
                    yield _Granted(_describe(binding, subject, binding_namespace), rules)

    def _role_ref_rules(self, role_ref: Mapping, binding_namespace: str) -> list[dict] | None:
        kind, name = role_ref.get("kind", ""), role_ref.get("name", "")
        if kind == "Role":
            # A ClusterRoleBinding's Role is looked up in namespace "" and never found, as on a real server.
            if binding_namespace:
                for role in self.source.rbac_objects("roles", binding_namespace):
                    if _meta(role).get("name") == name:
                        return list(role.get("rules") or [])
            self.errors.append(f"role.{bootstrap_roles.RBAC_GROUP} {go_quote(name)} not found")
            return None
        if kind == "ClusterRole":
            cluster_roles = self._all_cluster_roles()
            cluster_role = cluster_roles.get(name)
            if cluster_role is None:
                self.errors.append(f"clusterrole.{bootstrap_roles.RBAC_GROUP} {go_quote(name)} not found")
                return None
            if cluster_role.get("aggregationRule") is not None:
                return aggregated_rules(cluster_role, cluster_roles)
            return list(cluster_role.get("rules") or [])
        self.errors.append(f"unsupported role reference kind: {go_quote(kind)}")
        return None

    def _all_cluster_roles(self) -> dict[str, dict]:
        if self._cluster_roles is None:
            self._cluster_roles = {
                _meta(role).get("name", ""): role for role in self.source.rbac_objects("clusterroles", None)
            }
        return self._cluster_roles


def _describe(binding: Mapping, subject: Mapping, binding_namespace: str) -> str:
    """The binding as the real authorizer names it in an allow reason."""
    role_ref = binding.get("roleRef") or {}
    name = _meta(binding).get("name", "")
    if subject.get("kind") == "ServiceAccount":
        who = f"ServiceAccount {go_quote(subject.get('name', '') + '/' + (subject.get('namespace') or binding_namespace))}"
    else:
        who = f"{subject.get('kind', '')} {go_quote(subject.get('name', ''))}"
    if binding_namespace:
        return (f"RoleBinding {go_quote(name + '/' + binding_namespace)} of {role_ref.get('kind', '')}"
                f" {go_quote(role_ref.get('name', ''))} to {who}")
    return f"ClusterRoleBinding {go_quote(name)} of {role_ref.get('kind', '')} {go_quote(role_ref.get('name', ''))} to {who}"


def _errors_reason(errors: list[str]) -> str:
    """Resolution errors as the real authorizer reports them (an aggregate error: one, or ``[a, b]``)."""
    unique = list(dict.fromkeys(errors))
    if not unique:
        return ""
    return "RBAC: " + (unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]")


# --- ClusterRole aggregation (pkg/controller/clusterroleaggregation) ---


def aggregated_rules(role: Mapping, cluster_roles: Mapping[str, Mapping]) -> list[dict]:
    """The rules an aggregated ClusterRole has once the aggregation controller has settled.

    The union, without duplicates, of the rules of every other ClusterRole its
    selectors match, in name order; a matched role that aggregates in turn
    contributes what it aggregates.  The role's own ``rules`` are replaced, as the
    controller replaces them.
    """
    rules: list[dict] = []
    seen = {_meta(role).get("name", "")}

    def collect(aggregating: Mapping) -> None:
        for selector in (aggregating.get("aggregationRule") or {}).get("clusterRoleSelectors") or ():
            for name in sorted(cluster_roles):
                candidate = cluster_roles[name]
                if name in seen or not label_selector_matches(selector, _meta(candidate).get("labels") or {}):
                    continue
                seen.add(name)
                if candidate.get("aggregationRule") is not None:
                    collect(candidate)
                    continue
                for candidate_rule in candidate.get("rules") or ():
                    if candidate_rule not in rules:
                        rules.append(dict(candidate_rule))

    collect(role)
    return rules


def label_selector_matches(selector: Mapping | None, labels: Mapping[str, str]) -> bool:
    """Whether a structured LabelSelector (``matchLabels``/``matchExpressions``) matches ``labels``.

    An empty selector matches everything, a missing one nothing, and an unknown
    operator nothing (``metav1.LabelSelectorAsSelector``).
    """
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or ():
        key, operator, values = expression.get("key", ""), expression.get("operator"), expression.get("values") or ()
        if operator == "In":
            ok = key in labels and labels[key] in values
        elif operator == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif operator == "Exists":
            ok = key in labels
        elif operator == "DoesNotExist":
            ok = key not in labels
        else:
            return False
        if not ok:
            return False
    return True


# --- helpers ---


def go_quote(text: str) -> str:
    """``text`` as Go's ``%q`` prints it (the form names take in the real server's messages)."""
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r",
               "\a": "\\a", "\b": "\\b", "\f": "\\f", "\v": "\\v"}
    out = []
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _meta(obj: Mapping) -> Mapping:
    return obj.get("metadata") or {}
