"""Create, read, update, delete: what a client of the cluster interface relies on."""

from __future__ import annotations

import base64

import pytest

from gateway.cluster.interface import (
    AlreadyExists,
    BadRequest,
    Cluster,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    PatchType,
    ServerError,
)

from .helpers import configmap, pod


async def test_create_fills_server_fields_and_get_returns_the_stored_object(cluster: Cluster, ns: str) -> None:
    created = await cluster.create("configmaps", configmap("settings", data={"a": "1"}), namespace=ns)
    meta = created["metadata"]
    assert meta["namespace"] == ns
    assert meta["uid"] and meta["resourceVersion"]
    assert meta["creationTimestamp"].endswith("Z")
    assert created["kind"] == "ConfigMap" and created["apiVersion"] == "v1"
    fetched = await cluster.get("configmaps", "settings", namespace=ns)
    assert fetched == created


async def test_returned_objects_are_copies(cluster: Cluster, ns: str) -> None:
    created = await cluster.create("configmaps", configmap("mine", data={"a": "1"}), namespace=ns)
    created["data"]["a"] = "changed"
    fetched = await cluster.get("configmaps", "mine", namespace=ns)
    fetched["data"]["a"] = "changed again"
    assert (await cluster.get("configmaps", "mine", namespace=ns))["data"] == {"a": "1"}


async def test_every_write_gets_a_higher_resource_version(cluster: Cluster, ns: str) -> None:
    first = await cluster.create("configmaps", configmap("one"), namespace=ns)
    second = await cluster.create("configmaps", configmap("two"), namespace=ns)
    patched = await cluster.patch("configmaps", "one", {"data": {"k": "v"}}, namespace=ns)
    versions = [int(o["metadata"]["resourceVersion"]) for o in (first, second, patched)]
    assert versions == sorted(versions) and len(set(versions)) == 3


async def test_list_is_sorted_and_carries_the_collection_version(cluster: Cluster, ns: str) -> None:
    for name in ("c", "a", "b"):
        await cluster.create("configmaps", configmap(name), namespace=ns)
    listed = await cluster.list("configmaps", namespace=ns)
    assert listed["kind"] == "ConfigMapList"
    names = [i["metadata"]["name"] for i in listed["items"] if i["metadata"]["name"] in "abc"]
    assert names == ["a", "b", "c"]
    newest = max(int(i["metadata"]["resourceVersion"]) for i in listed["items"])
    assert int(listed["metadata"]["resourceVersion"]) >= newest


async def test_generate_name_gives_a_fresh_name_with_the_prefix(cluster: Cluster, ns: str) -> None:
    body = {"metadata": {"generateName": "kernel-"}, "data": {}}
    a = await cluster.create("configmaps", body, namespace=ns)
    b = await cluster.create("configmaps", body, namespace=ns)
    assert a["metadata"]["name"].startswith("kernel-") and len(a["metadata"]["name"]) == len("kernel-") + 5
    assert a["metadata"]["name"] != b["metadata"]["name"]


async def test_create_of_a_taken_name_is_already_exists(cluster: Cluster, ns: str) -> None:
    await cluster.create("pods", pod("taken"), namespace=ns)
    with pytest.raises(AlreadyExists) as err:
        await cluster.create("pods", pod("taken"), namespace=ns)
    assert err.value.message == 'pods "taken" already exists'
    assert err.value.status == 409


async def test_missing_objects_and_namespaces_are_not_found(cluster: Cluster, ns: str) -> None:
    with pytest.raises(NotFound) as err:
        await cluster.get("pods", "ghost", namespace=ns)
    assert err.value.message == 'pods "ghost" not found'
    with pytest.raises(NotFound):
        await cluster.delete("configmaps", "ghost", namespace=ns)
    with pytest.raises(NotFound) as err:
        await cluster.create("configmaps", configmap("x"), namespace="no-such-namespace")
    assert err.value.message == 'namespaces "no-such-namespace" not found'


async def test_namespace_of_body_and_request_must_agree(cluster: Cluster, ns: str) -> None:
    body = configmap("x")
    body["metadata"]["namespace"] = "default"
    with pytest.raises(BadRequest) as err:
        await cluster.create("configmaps", body, namespace=ns)
    assert "does not match the namespace" in err.value.message


async def test_invalid_name_is_422_with_a_field_cause(cluster: Cluster, ns: str) -> None:
    with pytest.raises(Invalid) as err:
        await cluster.create("configmaps", configmap("Bad_Name"), namespace=ns)
    assert err.value.message.startswith(
        'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain'
    )
    [cause] = err.value.causes
    assert (cause.reason, cause.field) == ("FieldValueInvalid", "metadata.name")
    assert cause.message.startswith('Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of')


async def test_namespace_names_are_labels_of_at_most_63_characters(cluster: Cluster) -> None:
    with pytest.raises(Invalid) as err:
        await cluster.create("namespaces", {"metadata": {"name": "n" * 64}})
    assert any(c.field == "metadata.name" and "must be no more than 63 characters" in c.message
               for c in err.value.causes)
    with pytest.raises(Invalid) as err:
        await cluster.create("namespaces", {"metadata": {"name": "dotted.name"}})
    assert [(c.field, c.message) for c in err.value.causes] == [
        ("metadata.name", 'Invalid value: "dotted.name": must not contain dots')]
    with pytest.raises(Invalid) as err:
        await cluster.create("namespaces", {"metadata": {"name": "Upper_case"}})
    assert "a lowercase RFC 1123 label must consist of" in err.value.message


async def test_pod_without_containers_or_image_is_invalid(cluster: Cluster, ns: str) -> None:
    with pytest.raises(Invalid) as err:
        await cluster.create("pods", {"metadata": {"name": "empty"}, "spec": {"containers": []}}, namespace=ns)
    assert ("FieldValueRequired", "spec.containers") in {(c.reason, c.field) for c in err.value.causes}
    body = pod("noimage")
    del body["spec"]["containers"][0]["image"]
    with pytest.raises(Invalid) as err:
        await cluster.create("pods", body, namespace=ns)
    assert ("FieldValueRequired", "spec.containers[0].image") in {(c.reason, c.field) for c in err.value.causes}
    body = pod("badcontainer")
    body["spec"]["containers"][0]["name"] = "Main"
    with pytest.raises(Invalid) as err:
        await cluster.create("pods", body, namespace=ns)
    assert [c.field for c in err.value.causes] == ["spec.containers[0].name"]


async def test_a_lease_is_replaced_only_at_the_version_read_but_a_config_map_without_one(cluster: Cluster,
                                                                                        ns: str) -> None:
    # A lease's strategy refuses unconditional updates (its AllowUnconditionalUpdate is false): two holders
    # renewing at once cannot both win by leaving the version out.  Most kinds take a PUT without one.
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "held"},
             "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
    created = await cluster.create("leases", lease, namespace=ns)
    with pytest.raises(Invalid) as err:
        await cluster.replace("leases", "held", dict(lease, spec={"holderIdentity": "b"}), namespace=ns)
    assert err.value.message == ('leases.coordination.k8s.io "held" is invalid: metadata.resourceVersion: '
                                 "Invalid value: 0: must be specified for an update")
    assert [(c.reason, c.field) for c in err.value.causes] == [("FieldValueInvalid", "metadata.resourceVersion")]
    renewed = await cluster.replace("leases", "held", dict(created, spec={"holderIdentity": "b"}), namespace=ns)
    assert renewed["spec"]["holderIdentity"] == "b"
    await cluster.create("configmaps", configmap("free", data={"v": "1"}), namespace=ns)
    replaced = await cluster.replace("configmaps", "free", configmap("free", data={"v": "2"}), namespace=ns)
    assert replaced["data"] == {"v": "2"}


async def test_a_replaced_secret_without_a_type_is_opaque_and_its_type_cannot_change(cluster: Cluster,
                                                                                      ns: str) -> None:
    # SetDefaults_Secret runs on every decoded body, a PUT's too; ValidateSecretUpdate keeps the type.
    await cluster.create("secrets", {"metadata": {"name": "plain"}, "data": {"k": "YQ=="}}, namespace=ns)
    replaced = await cluster.replace("secrets", "plain", {"metadata": {"name": "plain"}, "data": {"k": "Yg=="}},
                                     namespace=ns)
    assert (replaced["type"], replaced["data"]) == ("Opaque", {"k": "Yg=="})
    await cluster.create("secrets", {"metadata": {"name": "typed"}, "type": "example.com/custom"}, namespace=ns)
    with pytest.raises(Invalid) as err:
        await cluster.replace("secrets", "typed", {"metadata": {"name": "typed"}}, namespace=ns)
    assert err.value.message == 'Secret "typed" is invalid: type: Invalid value: "Opaque": field is immutable'


async def test_replace_with_a_stale_version_conflicts(cluster: Cluster, ns: str) -> None:
    old = await cluster.create("configmaps", configmap("cfg", data={"v": "1"}), namespace=ns)
    fresh = dict(old, data={"v": "2"})
    updated = await cluster.replace("configmaps", "cfg", fresh, namespace=ns)
    assert updated["data"] == {"v": "2"}
    assert int(updated["metadata"]["resourceVersion"]) > int(old["metadata"]["resourceVersion"])
    with pytest.raises(Conflict) as err:
        await cluster.replace("configmaps", "cfg", dict(old, data={"v": "3"}), namespace=ns)
    assert err.value.message == (
        'Operation cannot be fulfilled on configmaps "cfg": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert (await cluster.get("configmaps", "cfg", namespace=ns))["data"] == {"v": "2"}


async def test_patch_formats(cluster: Cluster, ns: str) -> None:
    await cluster.create("configmaps", configmap("p", data={"a": "1", "b": "2"}), namespace=ns)
    merged = await cluster.patch("configmaps", "p", {"data": {"a": None, "c": "3"}}, namespace=ns)
    assert merged["data"] == {"b": "2", "c": "3"}
    jsonp = await cluster.patch("configmaps", "p", [{"op": "test", "path": "/data/b", "value": "2"},
                                                    {"op": "replace", "path": "/data/b", "value": "20"}],
                                namespace=ns, patch_type=PatchType.JSON)
    assert jsonp["data"] == {"b": "20", "c": "3"}
    with pytest.raises(Invalid):
        await cluster.patch("configmaps", "p", [{"op": "test", "path": "/data/b", "value": "nope"}],
                            namespace=ns, patch_type=PatchType.JSON)


async def test_strategic_merge_patch_merges_containers_by_name(cluster: Cluster, ns: str) -> None:
    body = pod("smp")
    body["spec"]["containers"].append({"name": "side", "image": "busybox:1.35"})
    await cluster.create("pods", body, namespace=ns)
    patched = await cluster.patch("pods", "smp", {"spec": {"containers": [{"name": "side", "image": "busybox:1.37"}]}},
                                  namespace=ns, patch_type=PatchType.STRATEGIC)
    images = {c["name"]: c["image"] for c in patched["spec"]["containers"]}
    assert images == {"main": "busybox:1.36", "side": "busybox:1.37"}


async def test_pod_defaults_and_pending_status(cluster: Cluster, ns: str) -> None:
    body = pod("defaults")
    body["status"] = {"phase": "Running"}
    created = await cluster.create("pods", body, namespace=ns)
    spec = created["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["serviceAccountName"] == "default"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert created["status"]["phase"] == "Pending"
    assert created["status"]["qosClass"] == "BestEffort"


async def test_pod_with_a_missing_service_account_is_refused(cluster: Cluster, ns: str) -> None:
    with pytest.raises(Forbidden) as err:
        await cluster.create("pods", pod("nosa", serviceAccountName="ghost"), namespace=ns)
    assert err.value.message == (
        f'pods "nosa" is forbidden: error looking up service account {ns}/ghost: serviceaccount "ghost" not found'
    )


async def test_a_pods_mounts_name_its_volumes_each_given_once(cluster: Cluster, ns: str) -> None:
    volumes = [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "settings"}}]
    mounts = [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/cfg"}]
    created = await cluster.create("pods", pod("ok", volumes=volumes, containers=[
        {"name": "main", "image": "busybox:1.36", "volumeMounts": mounts}]), namespace=ns)
    assert created["spec"]["volumes"][1]["configMap"] == {"name": "settings", "defaultMode": 0o644}
    with pytest.raises(Invalid) as err:
        await cluster.create("pods", pod("unmounted", containers=[
            {"name": "main", "image": "busybox:1.36", "volumeMounts": [{"name": "other", "mountPath": "/x"}]}]),
            namespace=ns)
    assert [(c.reason, c.field, c.message) for c in err.value.causes] == [
        ("FieldValueNotFound", "spec.containers[0].volumeMounts[0].name", 'Not found: "other"')]
    with pytest.raises(Invalid) as err:
        await cluster.create("pods", pod("twice", volumes=volumes + volumes[:1]), namespace=ns)
    assert [(c.reason, c.field) for c in err.value.causes] == [("FieldValueDuplicate", "spec.volumes[2].name")]


async def test_an_event_is_about_an_object_of_its_own_namespace(cluster: Cluster, ns: str) -> None:
    def event(name: str, namespace: str) -> dict[str, object]:
        return {"metadata": {"name": name}, "reason": "Started", "message": "m", "type": "Normal",
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": namespace}}

    await cluster.create("events", event("mine", ns), namespace=ns)
    with pytest.raises(Invalid) as err:
        await cluster.create("events", event("theirs", "elsewhere"), namespace=ns)
    assert [(c.field, c.message) for c in err.value.causes] == [
        ("involvedObject.namespace", 'Invalid value: "elsewhere": does not match event.namespace')]


async def test_a_service_accounts_secrets_are_owned_whole(cluster: Cluster, ns: str) -> None:
    created = await cluster.create("serviceaccounts", {"metadata": {"name": "robot"}, "secrets": [{"name": "x"}]},
                                   namespace=ns)
    [entry] = created["metadata"]["managedFields"]
    assert entry["fieldsV1"] == {"f:secrets": {".": {}, 'k:{"name":"x"}': {}}}  # an ObjectReference is atomic


async def test_a_lease_holds_micro_times_in_utc_and_refuses_other_precisions(cluster: Cluster, ns: str) -> None:
    """What a replica's lease renewals rely on: ``renewTime`` is RFC 3339 with six fractional digits, kept in UTC."""
    created = await cluster.create("leases", {"metadata": {"name": "held"}, "spec": {
        "holderIdentity": "a", "renewTime": "2026-12-07T19:31:12.123456+01:00"}}, namespace=ns)
    assert created["spec"]["renewTime"] == "2026-12-07T18:31:12.123456Z"
    with pytest.raises(BadRequest) as err:
        await cluster.create("leases", {"metadata": {"name": "coarse"}, "spec": {"renewTime": "2026-12-07T18:31:12Z"}},
                             namespace=ns)
    assert str(err.value) == ('Lease in version "v1" cannot be handled as a Lease: parsing time "2026-12-07T18:31:12Z" '
                              'as "2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000"')


async def test_pod_spec_is_immutable_except_images(cluster: Cluster, ns: str) -> None:
    created = await cluster.create("pods", pod("fixed"), namespace=ns)
    changed = await cluster.patch("pods", "fixed", {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}},
                                  namespace=ns, patch_type=PatchType.STRATEGIC)
    assert changed["spec"]["containers"][0]["image"] == "busybox:1.37"
    body = dict(created)
    body["spec"] = dict(created["spec"], containers=[dict(created["spec"]["containers"][0], command=["true"])])
    body["metadata"] = dict(changed["metadata"])
    with pytest.raises(Invalid) as err:
        await cluster.replace("pods", "fixed", body, namespace=ns)
    assert err.value.message.startswith('Pod "fixed" is invalid: spec: Forbidden: pod updates may not change fields')
    assert [(c.reason, c.field) for c in err.value.causes] == [("FieldValueForbidden", "spec")]


async def test_status_subresource_keeps_spec_and_main_writes_keep_status(cluster: Cluster, ns: str) -> None:
    created = await cluster.create("pods", pod("st", labels={"a": "1"}), namespace=ns)
    # pods/status takes the metadata it is given, but never the spec (podStatusStrategy.PrepareForUpdate).
    updated = await cluster.patch("pods", "st", {"metadata": {"labels": {"a": "2"}}, "status": {"phase": "Running"},
                                                 "spec": {"activeDeadlineSeconds": 5}},
                                  namespace=ns, subresource="status")
    assert updated["status"]["phase"] == "Running"
    assert updated["metadata"]["labels"] == {"a": "2"}
    assert updated["spec"] == created["spec"]
    relabeled = await cluster.patch("pods", "st", {"metadata": {"labels": {"a": "3"}}, "status": {"phase": "Failed"}},
                                    namespace=ns)
    assert relabeled["metadata"]["labels"] == {"a": "3"}
    assert relabeled["status"]["phase"] == "Running"


async def test_secret_string_data_is_stored_as_base64_data(cluster: Cluster, ns: str) -> None:
    created = await cluster.create("secrets", {"metadata": {"name": "s"}, "stringData": {"token": "abc"}}, namespace=ns)
    assert "stringData" not in created
    assert base64.b64decode(created["data"]["token"]) == b"abc"
    assert created["type"] == "Opaque"


async def test_services_get_a_cluster_ip(cluster: Cluster, ns: str) -> None:
    svc = {"metadata": {"name": "kernel"}, "spec": {"selector": {"a": "b"}, "ports": [{"port": 8888}]}}
    created = await cluster.create("services", svc, namespace=ns)
    assert created["spec"]["clusterIP"].count(".") == 3
    assert created["spec"]["ports"][0]["targetPort"] == 8888
    # Service names are DNS-1123 labels (RelaxedServiceNameValidation, GA in 1.37): a leading digit is fine.
    await cluster.create("services", dict(svc, metadata={"name": "1-starts-with-digit"}), namespace=ns)
    with pytest.raises(Invalid) as err:
        await cluster.create("services", dict(svc, metadata={"name": "dotted.name"}), namespace=ns)
    assert [c.field for c in err.value.causes] == ["metadata.name"]


async def test_delete_answers_as_the_registry_does(cluster: Cluster, ns: str) -> None:
    created = await cluster.create("configmaps", configmap("bye"), namespace=ns)
    status = await cluster.delete("configmaps", "bye", namespace=ns)
    assert (status["kind"], status["status"]) == ("Status", "Success")
    assert status["details"]["uid"] == created["metadata"]["uid"]
    with pytest.raises(NotFound):
        await cluster.get("configmaps", "bye", namespace=ns)
    # Pods, services and service accounts come back as the deleted object.
    await cluster.create("pods", pod("gone"), namespace=ns)
    deleted = await cluster.delete("pods", "gone", namespace=ns)
    assert (deleted["kind"], deleted["metadata"]["name"]) == ("Pod", "gone")


async def test_cluster_scoped_and_rbac_names(cluster: Cluster, ns: str) -> None:
    role = {"metadata": {"name": "kernel:reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    created = await cluster.create("clusterroles", role)
    assert "namespace" not in created["metadata"]
    binding = {"metadata": {"name": "b"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                        "name": "kernel:reader"},
               "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}]}
    await cluster.create("rolebindings", binding, namespace=ns)
    changed = dict(binding, roleRef=dict(binding["roleRef"], name="view"))
    with pytest.raises(Invalid) as err:
        await cluster.replace("rolebindings", "b", changed, namespace=ns)
    assert [(c.reason, c.field) for c in err.value.causes] == [("FieldValueInvalid", "roleRef")]
    assert err.value.causes[0].message.endswith("field is immutable")
    await cluster.delete("clusterroles", "kernel:reader")


async def test_a_binding_without_api_groups_gets_the_rbac_group(cluster: Cluster, ns: str) -> None:
    # Enterprise Gateway writes its kernels' RoleBindings with roleRef.apiGroup "": the server
    # defaults it (pkg/apis/rbac/v1/defaults.go), as it does a User or Group subject's.
    binding = {"metadata": {"name": "eg"}, "roleRef": {"apiGroup": "", "kind": "ClusterRole", "name": "view"},
               "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns, "apiGroup": ""},
                            {"kind": "User", "name": "alice"}]}
    created = await cluster.create("rolebindings", binding, namespace=ns)
    assert created["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}
    assert created["subjects"] == [{"kind": "ServiceAccount", "name": "default", "namespace": ns},
                                   {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]
    replaced = await cluster.replace("rolebindings", "eg", {**created, "roleRef": binding["roleRef"]}, namespace=ns)
    assert replaced["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"  # the same role: not a change of it


async def test_a_malformed_version_on_an_update_is_a_server_error_with_the_parsers_text(cluster: Cluster,
                                                                                        ns: str) -> None:
    created = await cluster.create("secrets", {"metadata": {"name": "s"}, "stringData": {"k": "v"}}, namespace=ns)
    body = {**created, "metadata": {**created["metadata"], "resourceVersion": "abc"}}
    with pytest.raises(ServerError) as err:
        await cluster.replace("secrets", "s", body, namespace=ns)
    assert (err.value.status, err.value.message) == (500, 'strconv.ParseUint: parsing "abc": invalid syntax')
    with pytest.raises(ServerError) as err:
        await cluster.patch("secrets", "s", {"metadata": {"resourceVersion": "-1"}}, namespace=ns)
    assert (err.value.status, err.value.message) == (500, 'strconv.ParseUint: parsing "-1": invalid syntax')
    # A missing object is looked up first: its absence is what the update answers.
    with pytest.raises(NotFound):
        await cluster.replace("secrets", "gone", {**body, "metadata": {"name": "gone", "resourceVersion": "abc"}},
                              namespace=ns)
    assert (await cluster.get("secrets", "s", namespace=ns))["metadata"]["resourceVersion"] == \
        created["metadata"]["resourceVersion"]
