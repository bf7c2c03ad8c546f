"""Requests the simulated API server refuses, with the status a real one answers, changing nothing.

Malformed JSON, unknown paths, invalid names, missing or unknown tokens, verbs
RBAC forbids, bodies that contradict their URL, server-side apply, unknown
verbs and dry runs.  The server and client are tests/apiserverharness.py's.
"""

from __future__ import annotations

from typing import Any

from tests.apiserverharness import (
    api_fixture,  # noqa: F401 (a fixture, which pytest finds by name)
    cluster_fixture,  # noqa: F401 (a fixture, which pytest finds by name)
    configmap,
    service_account_token,
)


async def _assert_refused(cluster, api, method, path, body, code, reason, headers=None) -> dict[str, Any]:
    before = cluster.store.resource_version
    got_code, status = await api.call(method, path, body, headers)
    assert (got_code, status["kind"], status["status"], status["reason"], status["code"]) == (
        code, "Status", "Failure", reason, code
    ), status
    assert cluster.store.resource_version == before, "a refused request changed the store"
    return status


async def test_malformed_json_is_a_400_and_changes_nothing(cluster, api):
    status = await _assert_refused(cluster, api, "POST", "/api/v1/namespaces/default/configmaps", b'{"metadata": {',
                                   400, "BadRequest", {"Content-Type": "application/json"})
    assert status["message"] == "couldn't get version/kind; json parse error: unexpected end of JSON input"
    status = await _assert_refused(cluster, api, "POST", "/api/v1/namespaces/default/configmaps", b"{name: x}",
                                   400, "BadRequest", {"Content-Type": "application/json"})
    assert status["message"].endswith("invalid character 'n' looking for beginning of object key string")


async def test_nan_and_infinities_are_not_json_to_the_api_server(cluster, api):
    # Python's json module reads NaN and Infinity; Go's encoding/json, which the API server decodes
    # with, refuses them, and nothing the store holds is then a float that JSON cannot carry.
    for literal, message in (("NaN", "invalid character 'N' looking for beginning of value"),
                             ("-Infinity", "invalid character 'I' in numeric literal")):
        body = b'{"metadata": {"name": "x"}, "data": {"a": "b"}, "n": ' + literal.encode() + b"}"
        status = await _assert_refused(cluster, api, "POST", "/api/v1/namespaces/default/configmaps", body,
                                       400, "BadRequest", {"Content-Type": "application/json"})
        assert status["message"] == f"couldn't get version/kind; json parse error: {message}"


async def test_unknown_resource_paths_are_the_generic_404(cluster, api):
    for path in ("/api/v1/namespaces/default/widgets", "/apis/example.com/v1/things", "/api/v2"):
        status = await _assert_refused(cluster, api, "GET", path, None, 404, "NotFound")
        assert status["message"] == "the server could not find the requested resource"
    await _assert_refused(cluster, api, "POST", "/api/v1/namespaces/default/widgets", configmap("x"), 404, "NotFound")


async def test_an_invalid_name_is_a_422_with_its_field(cluster, api):
    status = await _assert_refused(cluster, api, "POST", "/api/v1/namespaces/default/configmaps",
                                   configmap("Not_Valid"), 422, "Invalid")
    assert any(c["field"] == "metadata.name" for c in status["details"]["causes"])


async def test_a_missing_or_unknown_token_is_a_401(cluster, api):
    for token in (None, "not-a-token"):
        status = await _assert_refused(cluster, api.as_token(token), "POST", "/api/v1/namespaces/default/configmaps",
                                       configmap("x"), 401, "Unauthorized")
        assert status["message"] == "Unauthorized"


async def test_a_forbidden_verb_is_a_403_with_the_rbac_message(cluster, api):
    token = await service_account_token(api, "default", "reader")
    status = await _assert_refused(cluster, api.as_token(token), "POST", "/api/v1/namespaces/default/configmaps",
                                   configmap("x"), 403, "Forbidden")
    assert status["message"] == (
        'configmaps is forbidden: User "system:serviceaccount:default:reader" cannot create resource "configmaps" '
        'in API group "" in the namespace "default"'
    )


async def test_mismatches_between_body_and_url_are_400(cluster, api):
    await _assert_refused(cluster, api, "POST", "/api/v1/namespaces/default/configmaps",
                          {**configmap("x"), "metadata": {"name": "x", "namespace": "other"}}, 400, "BadRequest")
    await _assert_refused(cluster, api, "POST", "/api/v1/namespaces/default/configmaps",
                          {**configmap("x"), "kind": "Secret"}, 400, "BadRequest")
    await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap("y"))
    status = await _assert_refused(cluster, api, "PUT", "/api/v1/namespaces/default/configmaps/y", configmap("z"),
                                   400, "BadRequest")
    assert status["message"] == "the name of the object (z) does not match the name on the URL (y)"


async def test_an_apply_without_manager_and_unknown_verbs_are_refused(cluster, api):
    await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap("y"))
    await _assert_refused(cluster, api, "PATCH", "/api/v1/namespaces/default/configmaps/y", b"data: {}",
                          422, "Invalid", {"Content-Type": "application/apply-patch+yaml"})
    await _assert_refused(cluster, api, "PATCH", "/api/v1/namespaces/default/configmaps/y?fieldManager=m", b"data: {}",
                          415, "UnsupportedMediaType", {"Content-Type": "application/apply-patch+cbor"})
    await _assert_refused(cluster, api, "DELETE", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/x", None,
                          405, "MethodNotAllowed")
    await _assert_refused(cluster, api, "POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Loose",
                          configmap("z"), 400, "BadRequest")


async def test_a_dry_run_is_refused_rather_than_written(cluster, api):
    await _assert_refused(cluster, api, "POST", "/api/v1/namespaces/default/configmaps?dryRun=All", configmap("d"),
                          400, "BadRequest")
