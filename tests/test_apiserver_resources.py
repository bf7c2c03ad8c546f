"""The simulated API server over plain HTTPS: discovery, and reading and writing objects.

Discovery documents and OpenAPI; create, get, list (by label and field
selectors, as a Table for kubectl), update, the three kinds of patch, delete
(one object or a collection); a pod's status, binding and log subresources.
The server and client are tests/apiserverharness.py's: TLS verified against
the cluster's generated CA, with a bearer token, as kubectl and the
``kubernetes`` client send them.
"""

from __future__ import annotations

from tests.apiserverharness import (
    TABLE,
    api_fixture,  # noqa: F401 (a fixture, which pytest finds by name)
    cluster_fixture,  # noqa: F401 (a fixture, which pytest finds by name)
    configmap,
)

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
    await api.ok("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}})
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
