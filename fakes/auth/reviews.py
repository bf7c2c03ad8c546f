"""Access reviews decided: what the API server answers to a SelfSubjectAccessReview (``kubectl auth can-i``)
or a SubjectAccessReview.

Called by :mod:`fakes.apiserver.reviews` for the POSTs it serves and by ``fakes.memory.MemoryCluster.create``
for reviews created through the cluster interface.  The answer mirrors
``pkg/registry/authorization/selfsubjectaccessreview/rest.go``: the request echoed back with
``status.allowed`` (and ``status.reason`` when the authorizer gave one); reviews are never stored.
"""

from __future__ import annotations

from typing import Any

from fakes.auth import rbac
from fakes.auth.identity import UserInfo
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


async def answer(cluster: Cluster, user: UserInfo, source: rbac.RuleSource, plural: str, body: dict[str, Any], *,
                 kind: str, api_version: str) -> dict[str, Any]:
    """The review ``body`` (of ``plural``) echoed back with its ``status``, as the API server answers it.

    Called by ``fakes.apiserver.reviews.review`` and by ``fakes.memory.MemoryCluster.create``.
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
