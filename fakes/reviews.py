"""Access reviews: SelfSubjectAccessReview (``kubectl auth can-i``), SubjectAccessReview,
SelfSubjectRulesReview (``kubectl auth can-i --list``) and SelfSubjectReview (``kubectl auth whoami``).

Called by :mod:`fakes.apiserver` for POSTs to ``authorization.k8s.io/v1``
``selfsubjectaccessreviews`` and ``subjectaccessreviews``.  The answer mirrors
``pkg/registry/authorization/selfsubjectaccessreview/rest.go``: the request
echoed back with ``status.allowed`` (and ``status.reason`` when the authorizer
gave one), code 201.
"""

from __future__ import annotations

from typing import Any

from fakes import decoding, rbac
from fakes.identity import UserInfo
from fakes.rest import Call, Reply
from gateway.cluster.interface import BadRequest, Cluster, Forbidden


def _attributes(spec: dict[str, Any]) -> rbac.Request:
    resource = spec.get("resourceAttributes")
    if resource:
        return rbac.Request(
            verb=str(resource.get("verb", "")), resource=str(resource.get("resource", "")),
            api_group=str(resource.get("group", "")), namespace=str(resource.get("namespace", "")),
            name=str(resource.get("name", "")), subresource=str(resource.get("subresource", "")),
        )
    non_resource = spec.get("nonResourceAttributes")
    if non_resource:
        return rbac.Request(verb=str(non_resource.get("verb", "")), path=str(non_resource.get("path", "")))
    # validation.go: "exactly one of nonResourceAttributes or resourceAttributes must be specified"
    raise BadRequest("spec.resourceAttributes: Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified")


async def review(cluster: Cluster, user: UserInfo, source: rbac.RuleSource, call: Call) -> Reply:
    """Answer an access review created by ``user`` through ``cluster``."""
    decoding.field_validation(call.query.get("fieldValidation"))
    body = decoding.decode_body(call.body, call.content_type)
    resource = call.target.resource
    return Reply(201, await answer(cluster, user, source, resource.plural, body,
                                   kind=resource.kind, api_version=resource.api_version))


async def answer(cluster: Cluster, user: UserInfo, source: rbac.RuleSource, plural: str, body: dict[str, Any], *,
                 kind: str, api_version: str) -> dict[str, Any]:
    """The review ``body`` (of ``plural``) echoed back with its ``status``, as the API server answers it.

    Called by :func:`review` and by ``fakes.memory.MemoryCluster.create``.
    """
    spec = body.get("spec") or {}
    request = _attributes(spec)
    if plural == "selfsubjectaccessreviews":
        subject = user
        if request.is_resource_request:
            allowed = await cluster.can_i(
                request.verb, request.resource, namespace=request.namespace or None, group=request.api_group,
                subresource=request.subresource, name=request.name,
            )
            decision = rbac.Decision(allowed)
        else:
            decision = rbac.authorize(subject, request, source)
    else:
        if not await cluster.can_i("create", "subjectaccessreviews", group="authorization.k8s.io"):
            denied = rbac.Request("create", "subjectaccessreviews", "authorization.k8s.io")
            raise Forbidden(rbac.forbidden_message(user, denied), kind="subjectaccessreviews", group="authorization.k8s.io")
        subject = UserInfo(str(spec.get("user", "")), tuple(spec.get("groups") or ()), str(spec.get("uid", "")))
        decision = rbac.authorize(subject, request, source)

    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"creationTimestamp": None, **(body.get("metadata") or {})},
        "spec": spec,
        "status": status,
    }


SELF_SUBJECT_REVIEW_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


def who_am_i(user: UserInfo, request_body: bytes, content_type: str) -> Reply:
    """SelfSubjectReview: the caller's identity as the server sees it, after impersonation
    (``pkg/registry/authentication/selfsubjectreview/rest.go``)."""
    body = decoding.decode_body(request_body, content_type)
    info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    return Reply(201, {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None, **(body.get("metadata") or {})},
        "status": {"userInfo": info},
    })


SELF_SUBJECT_RULES_REVIEW_PATH = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"


def rules_review(user: UserInfo, source: rbac.RuleSource, request_body: bytes, content_type: str) -> Reply:
    """SelfSubjectRulesReview: every rule granting the caller something in ``spec.namespace``,
    split into resource and non-resource rules as ``pkg/registry/authorization/selfsubjectrulesreview``
    does; ``incomplete`` when a binding named a role that does not exist."""
    body = decoding.decode_body(request_body, content_type)
    spec = body.get("spec") or {}
    rules, errors = rbac.rules_for(user, str(spec.get("namespace") or ""), source)
    resource_rules, non_resource_rules = [], []
    for rule in rules:
        if rule.get("nonResourceURLs"):
            non_resource_rules.append({"verbs": list(rule.get("verbs") or []),
                                       "nonResourceURLs": list(rule["nonResourceURLs"])})
        else:
            entry = {k: list(rule.get(k) or []) for k in ("verbs", "apiGroups", "resources", "resourceNames")}
            resource_rules.append({k: v for k, v in entry.items() if v or k == "verbs"})
    status: dict[str, Any] = {
        "resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": bool(errors),
    }
    if errors:
        status["evaluationError"] = "; ".join(errors)
    return Reply(201, {
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    })
