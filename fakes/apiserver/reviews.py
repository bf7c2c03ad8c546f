"""Access reviews over the wire: SelfSubjectAccessReview (``kubectl auth can-i``), SubjectAccessReview,
SelfSubjectRulesReview (``kubectl auth can-i --list``) and SelfSubjectReview (``kubectl auth whoami``).

Called by :mod:`fakes.apiserver.server` for POSTs to ``authorization.k8s.io/v1`` and
``authentication.k8s.io/v1``: it decodes the body, lets :mod:`fakes.auth.reviews` decide,
and answers 201 with the review echoed back.
"""

from __future__ import annotations

from typing import Any

from fakes.apiserver import decoding
from fakes.apiserver.rest import Call, Reply
from fakes.auth import rbac
from fakes.auth import reviews as decide
from fakes.auth.identity import UserInfo
from gateway.cluster.interface import Cluster


async def review(cluster: Cluster, user: UserInfo, source: rbac.RuleSource, call: Call) -> Reply:
    """Answer an access review created by ``user`` through ``cluster``."""
    decoding.field_validation(call.query.get("fieldValidation"))
    body = decoding.decode_body(call.body, call.content_type)
    resource = call.target.resource
    return Reply(201, await decide.answer(cluster, user, source, resource.plural, body,
                                          kind=resource.kind, api_version=resource.api_version))


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
