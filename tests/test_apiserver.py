"""The simulated API server over plain HTTPS: discovery, CRUD, watch streams, errors, tokens, RBAC.

Every request goes through TLS verified against the cluster's generated CA,
with a bearer token, as kubectl and the ``kubernetes`` client send them.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from fakes.serve import SimulatedCluster
from fakes.state.store import Store

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


class Api:
    """A minimal Kubernetes REST client over tornado's HTTP client (never blocks the loop)."""

    def __init__(self, cluster: SimulatedCluster, token: str | None) -> None:
        self.url = cluster.url
        self.token = token
        self.ssl = ssl.create_default_context(cadata=cluster.ca_pem.decode())
        self.http = AsyncHTTPClient(force_instance=True)

    def as_token(self, token: str | None) -> Api:
        other = Api.__new__(Api)
        other.__dict__.update(self.__dict__, token=token)
        return other

    def _request(self, method: str, path: str, body: Any, headers: dict[str, str] | None, **kwargs: Any) -> HTTPRequest:
        hdrs = {"Accept": "application/json", **(headers or {})}
        if self.token is not None:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        kwargs.setdefault("request_timeout", 10)
        return HTTPRequest(
            self.url + path, method=method, body=body, headers=hdrs, ssl_options=self.ssl,
            allow_nonstandard_methods=True, **kwargs,
        )

    async def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """``(status code, decoded JSON body or text)``."""
        response = await self.http.fetch(self._request(method, path, body, headers), raise_error=False)
        text = response.body.decode() if response.body else ""
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return response.code, json.loads(text)
        return response.code, text

    async def ok(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        code, result = await self.call(method, path, body, headers)
        assert code < 300, (code, result)
        return result

    def watch(self, path: str, headers: dict[str, str] | None = None) -> Watch:
        return Watch(self, path, headers)


class Watch:
    """A watch stream read line by line as the server sends it."""

    def __init__(self, api: Api, path: str, headers: dict[str, str] | None) -> None:
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._buffer = b""
        self.headers: dict[str, str] = {}
        request = api._request(
            "GET", path, None, headers, streaming_callback=self._chunk,
            header_callback=self._header, request_timeout=30,
        )
        self.done = asyncio.ensure_future(api.http.fetch(request, raise_error=False))

    def _header(self, line: str) -> None:
        if ":" in line:
            key, _, value = line.partition(":")
            self.headers[key.strip().lower()] = value.strip()

    def _chunk(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            if line.strip():
                self.events.put_nowait(json.loads(line))

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.events.get(), 5)

    async def finished(self) -> Any:
        return await asyncio.wait_for(self.done, 10)


@pytest.fixture
async def cluster():
    async with SimulatedCluster(node_agent=False, store=Store(watch_window=5)) as c:
        yield c


@pytest.fixture
def api(cluster):
    api = Api(cluster, cluster.admin_token)
    yield api
    api.http.close()


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}}, "data": data}


# ------------------------------------------------------------------------------------------ discovery


async def test_public_endpoints_answer_without_a_token(api):
    anonymous = api.as_token(None)
    for path in ("/healthz", "/livez", "/readyz"):
        assert await anonymous.call("GET", path) == (200, "ok")
    code, version = await anonymous.call("GET", "/version")
    assert code == 200 and version["gitVersion"].startswith("v1.") and version["major"] == "1"


async def test_discovery_lists_the_served_resources(api):
    core = await api.ok("GET", "/api")
    assert core["kind"] == "APIVersions" and core["versions"] == ["v1"]
    v1 = await api.ok("GET", "/api/v1")
    by_name = {r["name"]: r for r in v1["resources"]}
    assert by_name["pods"]["shortNames"] == ["po"] and "all" in by_name["pods"]["categories"]
    assert by_name["pods"]["namespaced"] and by_name["pods"]["singularName"] == "pod"
    assert by_name["pods/log"]["verbs"] == ["get"]
    assert by_name["pods/binding"]["kind"] == "Binding"
    assert by_name["serviceaccounts/token"]["group"] == "authentication.k8s.io"
    assert not by_name["namespaces"]["namespaced"]

    groups = {g["name"]: g for g in (await api.ok("GET", "/apis"))["groups"]}
    assert groups["rbac.authorization.k8s.io"]["preferredVersion"]["groupVersion"] == "rbac.authorization.k8s.io/v1"
    assert {"apps", "coordination.k8s.io", "authorization.k8s.io"} <= set(groups)
    apps = await api.ok("GET", "/apis/apps/v1")
    assert [r["name"] for r in apps["resources"] if "/" not in r["name"]] == ["deployments", "replicasets"]
    assert (await api.ok("GET", "/apis/apps"))["versions"][0]["version"] == "v1"


async def test_openapi_v3_says_the_server_validates_fields(api):
    index = await api.ok("GET", "/openapi/v3")
    assert "api/v1" in index["paths"] and "apis/apps/v1" in index["paths"]
    doc = await api.ok("GET", index["paths"]["api/v1"]["serverRelativeURL"])
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert any(p["name"] == "fieldValidation" and p["in"] == "query" for p in patch["parameters"])


# ------------------------------------------------------------------------------------------ CRUD


async def test_create_get_list_update_patch_delete(api):
    await api.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n1"}})
    code, created = await api.call("POST", "/api/v1/namespaces/n1/configmaps", configmap("a", {"app": "x"}, k="1"))
    assert code == 201 and created["metadata"]["namespace"] == "n1" and created["metadata"]["uid"]
    await api.ok("POST", "/api/v1/namespaces/n1/configmaps?fieldValidation=Strict", configmap("b", {"app": "y"}))
    await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap("c", {"app": "x"}))

    got = await api.ok("GET", "/api/v1/namespaces/n1/configmaps/a")
    assert got["data"] == {"k": "1"}
    listed = await api.ok("GET", "/api/v1/namespaces/n1/configmaps?labelSelector=app%3Dx&limit=500")
    assert listed["kind"] == "ConfigMapList" and [i["metadata"]["name"] for i in listed["items"]] == ["a"]
    assert listed["metadata"]["resourceVersion"]
    everywhere = await api.ok("GET", "/api/v1/configmaps?labelSelector=app%3Dx")
    assert sorted((i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere["items"]) == [
        ("default", "c"), ("n1", "a")
    ]
    by_field = await api.ok("GET", "/api/v1/namespaces/n1/configmaps?fieldSelector=metadata.name%3Db")
    assert [i["metadata"]["name"] for i in by_field["items"]] == ["b"]

    got["data"]["k"] = "2"
    replaced = await api.ok("PUT", "/api/v1/namespaces/n1/configmaps/a", got)
    assert replaced["data"] == {"k": "2"}
    assert int(replaced["metadata"]["resourceVersion"]) > int(got["metadata"]["resourceVersion"])

    path = "/api/v1/namespaces/n1/configmaps/a"
    merged = await api.ok("PATCH", path, {"data": {"m": "3"}}, {"Content-Type": "application/merge-patch+json"})
    assert merged["data"] == {"k": "2", "m": "3"}
    jsonpatched = await api.ok(
        "PATCH", path, [{"op": "remove", "path": "/data/k"}], {"Content-Type": "application/json-patch+json"}
    )
    assert jsonpatched["data"] == {"m": "3"}
    strategic = await api.ok(
        "PATCH", path, {"metadata": {"labels": {"tier": "t"}}}, {"Content-Type": "application/strategic-merge-patch+json"}
    )
    assert strategic["metadata"]["labels"] == {"app": "x", "tier": "t"}

    code, deleted = await api.call("DELETE", "/api/v1/namespaces/default/configmaps?labelSelector=app%3Dx")
    assert code == 200 and [i["metadata"]["name"] for i in deleted["items"]] == ["c"]
    assert [i["metadata"]["name"] for i in (await api.ok("GET", "/api/v1/configmaps?labelSelector=app"))["items"]] == ["a", "b"]

    code, _ = await api.call("DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
    assert code == 200
    code, missing = await api.call("GET", path)
    assert (code, missing["reason"], missing["details"]["name"]) == (404, "NotFound", "a")


async def test_list_as_table_for_kubectl_get(api):
    await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap("t1", k="v"))
    table = await api.ok("GET", "/api/v1/namespaces/default/configmaps", headers={"Accept": TABLE})
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    row = next(r for r in table["rows"] if r["cells"][0] == "t1")
    assert row["cells"][1] == 1 and row["object"]["kind"] == "PartialObjectMetadata"
    namespaces = await api.ok("GET", "/api/v1/namespaces?includeObject=Object", headers={"Accept": TABLE})
    assert [c["name"] for c in namespaces["columnDefinitions"]] == ["Name", "Status", "Age"]
    default = next(r for r in namespaces["rows"] if r["cells"][0] == "default")
    assert default["cells"][1] == "Active" and default["object"]["kind"] == "Namespace"


async def test_pod_subresources_status_binding_and_log(api):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    await api.ok("POST", "/api/v1/namespaces/default/pods", pod)
    code, bound = await api.call("POST", "/api/v1/namespaces/default/pods/p/binding", {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "node-a"},
    })
    assert code == 201 and bound["status"] == "Success"
    assert (await api.ok("GET", "/api/v1/namespaces/default/pods/p"))["spec"]["nodeName"] == "node-a"
    code, again = await api.call("POST", "/api/v1/namespaces/default/pods/p/binding", {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "node-b"},
    })
    assert (code, again["reason"]) == (409, "Conflict")

    patched = await api.ok("PATCH", "/api/v1/namespaces/default/pods/p/status", {"status": {"phase": "Running"}},
                           {"Content-Type": "application/merge-patch+json"})
    assert patched["status"]["phase"] == "Running"
    status = await api.ok("GET", "/api/v1/namespaces/default/pods/p/status")
    assert status["kind"] == "Pod" and status["status"]["phase"] == "Running"
    code, log = await api.call("GET", "/api/v1/namespaces/default/pods/p/log?container=c")
    assert code == 400 and log["reason"] == "BadRequest" and "waiting to start" in log["message"]


# ------------------------------------------------------------------------------------------ watch


async def test_watch_streams_events_in_order_until_its_timeout(api):
    listed = await api.ok("GET", "/api/v1/namespaces/default/configmaps")
    rv = listed["metadata"]["resourceVersion"]
    watch = api.watch(f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1")
    await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap("w", k="1"))
    await api.ok("PATCH", "/api/v1/namespaces/default/configmaps/w", {"data": {"k": "2"}},
                 {"Content-Type": "application/merge-patch+json"})
    await api.ok("DELETE", "/api/v1/namespaces/default/configmaps/w")
    events = [await watch.next() for _ in range(3)]
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert [e["object"]["data"]["k"] for e in events] == ["1", "2", "2"]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(rv)
    response = await watch.finished()  # timeoutSeconds ends the stream
    assert response.code == 200 and watch.events.empty()
    assert watch.headers["content-type"] == "application/json"


async def test_watch_without_version_starts_with_what_exists_and_filters_by_label(api):
    await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap("keep", {"app": "x"}))
    await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap("skip", {"app": "y"}))
    watch = api.watch("/api/v1/configmaps?watch=true&labelSelector=app%3Dx&timeoutSeconds=1")
    first = await watch.next()
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "keep")
    await watch.finished()
    assert watch.events.empty()


async def test_watch_as_table_for_kubectl_get_watch(api):
    rv = (await api.ok("GET", "/api/v1/namespaces/default/configmaps"))["metadata"]["resourceVersion"]
    watch = api.watch(f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1",
                      headers={"Accept": TABLE})
    await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap("tw", k="v"))
    event = await watch.next()
    assert event["type"] == "ADDED" and event["object"]["kind"] == "Table"
    assert event["object"]["rows"][0]["cells"][:2] == ["tw", 1]
    await watch.finished()


async def test_watch_from_a_version_too_old_gets_an_error_event_with_410(api, cluster):
    old = (await api.ok("GET", "/api/v1/namespaces/default/configmaps"))["metadata"]["resourceVersion"]
    for i in range(8):  # more writes than the store's watch window of 5
        await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap(f"g{i}"))
    watch = api.watch(f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old}")
    event = await watch.next()
    assert event["type"] == "ERROR"
    assert event["object"]["kind"] == "Status" and event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired" and "too old resource version" in event["object"]["message"]
    assert (await watch.finished()).code == 200


async def test_stopping_the_server_ends_open_watches(cluster, api):
    watch = api.watch("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=" + cluster.store.resource_version)
    await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap("nudge"))
    assert (await watch.next())["type"] == "ADDED"  # the event arrived: the watch is open on the server
    assert cluster.store.open_watches("configmaps") == 1
    await cluster.server.stop()
    await watch.finished()
    assert cluster.store.open_watches() == 0


async def test_a_client_that_goes_away_leaves_no_watch_behind(cluster):
    host, port = cluster.url.removeprefix("https://").rsplit(":", 1)
    ctx = ssl.create_default_context(cadata=cluster.ca_pem.decode())
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port), ssl=ctx), 5)
    writer.write(
        f"GET /api/v1/namespaces/default/pods?watch=1 HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {cluster.admin_token}\r\n\r\n".encode()
    )
    status_line = await asyncio.wait_for(reader.readline(), 5)
    assert status_line.startswith(b"HTTP/1.1 200")
    assert cluster.store.open_watches("pods") == 1
    writer.close()
    await asyncio.wait_for(cluster.server.watches.idle(), 5)
    assert cluster.store.open_watches() == 0


async def test_a_watch_the_caller_may_not_make_is_refused_with_403(api, cluster):
    token = await _service_account_token(api, "default", "nobody")
    code, status = await api.as_token(token).call("GET", "/api/v1/namespaces/default/pods?watch=1")
    assert (code, status["reason"]) == (403, "Forbidden")
    assert cluster.store.open_watches() == 0


# ------------------------------------------------------------------------------------------ errors


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
    token = await _service_account_token(api, "default", "reader")
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


async def test_server_side_apply_and_unknown_verbs_are_refused(cluster, api):
    await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap("y"))
    await _assert_refused(cluster, api, "PATCH", "/api/v1/namespaces/default/configmaps/y", b"data: {}",
                          415, "UnsupportedMediaType", {"Content-Type": "application/apply-patch+yaml"})
    await _assert_refused(cluster, api, "DELETE", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/x", None,
                          405, "MethodNotAllowed")
    await _assert_refused(cluster, api, "POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Loose",
                          configmap("z"), 400, "BadRequest")


# ------------------------------------------------------------------------------------------ tokens and RBAC


async def _service_account_token(api: Api, namespace: str, name: str) -> str:
    await api.ok("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts",
                 {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
    code, request = await api.call("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600},
    })
    assert code == 201 and request["kind"] == "TokenRequest" and request["status"]["expirationTimestamp"]
    return request["status"]["token"]


async def test_a_service_account_token_is_subject_to_rbac(api):
    token = await _service_account_token(api, "default", "lister")
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
    token = await _service_account_token(api, "default", "asker")
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

    token = await _service_account_token(api, "default", "plain")
    code, status = await api.as_token(token).call("GET", "/api/v1/namespaces/default/pods", headers=as_imp)
    assert (code, status["reason"]) == (403, "Forbidden")
    assert status["message"] == (
        'serviceaccounts "imp" is forbidden: User "system:serviceaccount:default:plain" cannot impersonate '
        'resource "serviceaccounts" in API group "" in the namespace "default"'
    )


async def test_a_dry_run_is_refused_rather_than_written(cluster, api):
    await _assert_refused(cluster, api, "POST", "/api/v1/namespaces/default/configmaps?dryRun=All", configmap("d"),
                          400, "BadRequest")
