"""Server-side apply over the wire: field managers, managedFields, conflicts and force.

The cluster interface carries no field manager, so these tests speak HTTP to
the target's API server (the ``client`` fixture); the in-memory target has no
wire and skips them.
"""

from __future__ import annotations

from typing import Any

from .helpers import APPLY, TEST_SCHEDULER, Client


def owners(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(manager, operation) -> fieldsV1 of an object's managedFields."""
    return {(e["manager"], e["operation"]): e["fieldsV1"] for e in obj["metadata"].get("managedFields", [])}


async def test_apply_needs_a_field_manager(client: Client) -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    answer = await client.send("PATCH", client.configmap_path("x"), config, content_type=APPLY)
    assert (answer.status, answer.body["reason"]) == (422, "Invalid")
    assert answer.body["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value: is required for apply patch",
         "field": "fieldManager"}]


async def test_apply_creates_then_a_second_apply_changes_nothing(client: Client) -> None:
    body = {"metadata": {"name": "cm", "labels": {"a": "1"}}, "data": {"k": "v"}}
    created = await client.apply("cm", body, "alice")
    assert created.status == 201
    assert owners(created.body) == {("alice", "Apply"): {"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:a": {}}}}}
    again = await client.apply("cm", body, "alice")
    assert again.status == 200
    assert again.body["metadata"]["resourceVersion"] == created.body["metadata"]["resourceVersion"]


async def test_a_conflicting_apply_names_the_owner_and_force_takes_the_field(client: Client) -> None:
    await client.apply("cm", {"data": {"k": "v", "mine": "a"}}, "alice")
    refused = await client.apply("cm", {"data": {"k": "other"}}, "bob")
    assert (refused.status, refused.body["reason"]) == (409, "Conflict")
    assert refused.body["message"] == 'Apply failed with 1 conflict: conflict with "alice": .data.k'
    assert refused.body["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "alice"', "field": ".data.k"}]
    # The same value is no conflict: both own it.
    shared = await client.apply("cm", {"data": {"k": "v"}}, "carol")
    assert shared.status == 200 and owners(shared.body)[("carol", "Apply")] == {"f:data": {"f:k": {}}}
    forced = await client.apply("cm", {"data": {"k": "other"}}, "bob", force="true")
    assert forced.status == 200 and forced.body["data"] == {"k": "other", "mine": "a"}
    assert owners(forced.body) == {("alice", "Apply"): {"f:data": {"f:mine": {}}},
                                   ("bob", "Apply"): {"f:data": {"f:k": {}}}}


async def test_updates_are_owned_by_their_manager_and_conflict_with_an_apply(client: Client) -> None:
    await client.apply("cm", {"data": {"k": "v"}}, "alice")
    patched = await client.send("PATCH", client.configmap_path("cm"), {"data": {"k": "edited", "extra": "1"}},
                                content_type="application/merge-patch+json", fieldManager="editor")
    assert patched.status == 200
    assert owners(patched.body) == {("editor", "Update"): {"f:data": {"f:extra": {}, "f:k": {}}}}
    refused = await client.apply("cm", {"data": {"k": "v"}}, "alice")
    assert refused.status == 409
    [cause] = refused.body["details"]["causes"]
    assert (cause["field"], cause["message"]) == (".data.k", 'conflict with "editor" using v1')


async def test_an_apply_drops_what_its_manager_stops_applying_unless_another_owns_it(client: Client) -> None:
    await client.apply("cm", {"data": {"a": "1", "b": "2", "c": "3"}}, "alice")
    await client.apply("cm", {"data": {"c": "3"}}, "bob")
    shrunk = await client.apply("cm", {"data": {"a": "1"}}, "alice")
    assert shrunk.body["data"] == {"a": "1", "c": "3"}


async def test_an_object_created_with_nothing_to_own_is_tracked_only_from_its_first_apply(client: Client) -> None:
    # k8s.io/apimachinery managedfields/internal/skipnonapplied.go: an update of an object without
    # managedFields records none; its first apply gives what it holds to "before-first-apply".
    bare = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bare", "labels": {}}}
    created = await client.send("POST", f"/api/v1/namespaces/{client.namespace}/configmaps", bare,
                                fieldManager="editor")
    assert created.status == 201 and "managedFields" not in created.body["metadata"]
    patched = await client.send("PATCH", client.configmap_path("bare"), {"metadata": {"labels": {"a": "1"}}},
                                content_type="application/merge-patch+json", fieldManager="editor")
    assert patched.body["metadata"]["labels"] == {"a": "1"}
    assert "managedFields" not in patched.body["metadata"]
    applied = await client.apply("bare", {"data": {"k": "v"}}, "alice")
    assert owners(applied.body) == {("before-first-apply", "Update"): {"f:metadata": {"f:labels": {".": {}, "f:a": {}}}},
                                    ("alice", "Apply"): {"f:data": {"f:k": {}}}}


async def test_a_keyed_item_its_applier_stops_applying_goes_whole_and_the_emptied_list_with_it(client: Client) -> None:
    path = f"/apis/apps/v1/namespaces/{client.namespace}/deployments/applied"

    def deployment(*env: dict[str, str]) -> dict[str, Any]:
        container: dict[str, Any] = {"name": "main", "image": "busybox:1.36", **({"env": list(env)} if env else {})}
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "applied"},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "applied"}},
                         "template": {"metadata": {"labels": {"app": "applied"}},
                                      "spec": {"schedulerName": "contract-tests", "containers": [container]}}}}

    async def apply(body: dict[str, Any]) -> dict[str, Any]:
        answer = await client.send("PATCH", path, body, content_type=APPLY, fieldManager="alice")
        assert answer.status in (200, 201), answer.body
        return answer.body["spec"]["template"]["spec"]["containers"][0]

    a, b = {"name": "A", "value": "1"}, {"name": "B", "value": "2"}
    assert (await apply(deployment(a, b)))["env"] == [a, b]
    # B goes with its key field (name), not as what is left of it once its fields are gone.
    assert (await apply(deployment(a)))["env"] == [a]
    assert "env" not in await apply(deployment())


async def test_keyed_lists_conflict_item_by_item(client: Client) -> None:
    path = f"/api/v1/namespaces/{client.namespace}/pods/applied"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "applied"},
           "spec": {"schedulerName": "contract-tests",
                    "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}
    created = await client.send("PATCH", path, pod, content_type=APPLY, fieldManager="alice")
    assert created.status == 201
    spec_fields = owners(created.body)[("alice", "Apply")]["f:spec"]
    assert spec_fields["f:containers"] == {'k:{"name":"main"}': {".": {}, "f:command": {}, "f:image": {}, "f:name": {}}}
    other = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "applied"},
             "spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}}
    refused = await client.send("PATCH", path, other, content_type=APPLY, fieldManager="bob")
    assert refused.status == 409
    assert [c["field"] for c in refused.body["details"]["causes"]] == ['.spec.containers[name="main"].image']


async def test_an_apply_must_name_its_kind_and_carry_no_managed_fields(client: Client) -> None:
    answer = await client.send("PATCH", client.configmap_path("cm"), {"metadata": {"name": "cm"}}, content_type=APPLY,
                               fieldManager="alice")
    assert (answer.status, answer.body["message"]) == (400, "invalid object type: /, Kind=")
    answer = await client.apply("cm", {"metadata": {"name": "cm", "managedFields": [{"manager": "x"}]}}, "alice")
    assert (answer.status, answer.body["message"]) == (400, "metadata.managedFields must be nil")
    answer = await client.apply("cm", {"metadata": {"name": "other"}}, "alice")
    assert answer.status == 400


async def test_an_apply_naming_a_malformed_version_is_a_server_error_with_the_parsers_text(client: Client) -> None:
    assert (await client.apply("there", {"data": {"k": "v"}}, "m")).status == 201
    for name in ("there", "missing"):
        answer = await client.apply(name, {"metadata": {"name": name, "resourceVersion": "abc"}, "data": {"k": "w"}},
                                    "m")
        assert (answer.status, answer.body["message"]) == (500, 'strconv.ParseUint: parsing "abc": invalid syntax')
    assert (await client.send("GET", client.configmap_path("missing"))).status == 404
    assert (await client.send("GET", client.configmap_path("there"))).body["data"] == {"k": "v"}


async def test_an_applied_list_holding_one_key_twice_cannot_be_typed(client: Client) -> None:
    """The field manager makes a typed object of the configuration first: a keyed list (a pod's volumes, by name)
    holding one key twice fails there, before anything is stored, with the real server's 500 and words."""
    volume = {"name": "data", "emptyDir": {}}
    config = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "twice"},
              "spec": {"schedulerName": TEST_SCHEDULER, "volumes": [volume, volume],
                       "containers": [{"name": "main", "image": "busybox:1.36"}]}}
    path = f"/api/v1/namespaces/{client.namespace}/pods/twice"
    answer = await client.send("PATCH", path, config, content_type=APPLY, fieldManager="alice")
    assert (answer.status, answer.body["message"]) == (
        500, 'failed to create typed patch object (/twice; /v1, Kind=Pod): .spec.volumes: duplicate entries for key '
             '[name="data"]')
    assert (await client.send("GET", path)).status == 404
