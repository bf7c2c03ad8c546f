"""Who a request to the simulated API server acts as: service account tokens, access reviews, impersonation.

A bound token is subject to RBAC and dies with its account; a
SelfSubjectAccessReview answers for the caller; impersonating a service
account takes its identity, only for a caller RBAC lets impersonate.  The
server and client are tests/apiserverharness.py's.
"""

from __future__ import annotations

from typing import Any

from tests.apiserverharness import (
    api_fixture,  # noqa: F401 (a fixture, which pytest finds by name)
    cluster_fixture,  # noqa: F401 (a fixture, which pytest finds by name)
    configmap,
    service_account_token,
)


async def test_a_service_account_token_is_subject_to_rbac(api):
    token = await service_account_token(api, "default", "lister")
    as_sa = api.as_token(token)
    code, status = await as_sa.call("GET", "/api/v1/namespaces/default/pods")
    assert (code, status["reason"]) == (403, "Forbidden")
    await api.ok("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    })
    await api.ok("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "lister-reads"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "lister", "namespace": "default"}],
    })
    assert (await as_sa.ok("GET", "/api/v1/namespaces/default/pods"))["kind"] == "PodList"
    code, _ = await as_sa.call("GET", "/api/v1/namespaces/kube-system/pods")
    assert code == 403
    await api.ok("DELETE", "/api/v1/namespaces/default/serviceaccounts/lister")
    code, status = await as_sa.call("GET", "/api/v1/namespaces/default/pods")
    assert (code, status["reason"]) == (401, "Unauthorized")  # a bound token dies with its account


def _review(verb: str, resource: str, namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": namespace, "verb": verb, "resource": resource}}}


async def test_self_subject_access_review_answers_for_the_caller(api):
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    code, review = await api.call("POST", path, _review("delete", "pods"))
    assert code == 201 and review["status"]["allowed"] is True and review["kind"] == "SelfSubjectAccessReview"
    token = await service_account_token(api, "default", "asker")
    review = await api.as_token(token).ok("POST", path, _review("delete", "pods"))
    assert review["status"]["allowed"] is False


async def test_impersonating_a_service_account_takes_its_identity(api):
    await api.ok("POST", "/api/v1/namespaces/default/serviceaccounts",
                 {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "imp"}})
    await api.ok("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "imp-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "imp", "namespace": "default"}],
    })
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    as_imp = {"Impersonate-User": "system:serviceaccount:default:imp"}
    assert (await api.ok("POST", path, _review("list", "pods"), as_imp))["status"]["allowed"] is True
    assert (await api.ok("POST", path, _review("create", "pods"), as_imp))["status"]["allowed"] is False
    code, status = await api.call("POST", "/api/v1/namespaces/default/configmaps", configmap("x"), as_imp)
    assert (code, status["reason"]) == (403, "Forbidden")
    assert 'User "system:serviceaccount:default:imp"' in status["message"]

    token = await service_account_token(api, "default", "plain")
    code, status = await api.as_token(token).call("GET", "/api/v1/namespaces/default/pods", headers=as_imp)
    assert (code, status["reason"]) == (403, "Forbidden")
    assert status["message"] == (
        'serviceaccounts "imp" is forbidden: User "system:serviceaccount:default:plain" cannot impersonate '
        'resource "serviceaccounts" in API group "" in the namespace "default"'
    )
