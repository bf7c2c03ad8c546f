"""A DELETE's preconditions: the object must still be the one the client read, else 409 and nothing changes.

``DeleteOptions.preconditions`` is not in the cluster interface, so these tests speak HTTP to the
target's API server (the ``client`` fixture); the in-memory target has no wire and skips them.
"""

from __future__ import annotations

from gateway.cluster.interface import Cluster

from .helpers import Client, configmap

NO_SUCH_UID = "00000000-0000-0000-0000-000000000000"


def delete_options(**preconditions: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": preconditions}


async def test_a_delete_of_an_object_changed_since_it_was_read_is_refused(client: Client, cluster: Cluster,
                                                                          ns: str) -> None:
    read = await cluster.create("configmaps", configmap("cm"), namespace=ns)
    changed = await cluster.patch("configmaps", "cm", {"data": {"k": "v"}}, namespace=ns)
    path = client.configmap_path("cm")
    stale = await client.send("DELETE", path, delete_options(resourceVersion=read["metadata"]["resourceVersion"]))
    assert (stale.status, stale.body["reason"], stale.body["details"]) == (409, "Conflict",
                                                                           {"name": "cm", "kind": "ConfigMap"})
    assert stale.body["message"] == (
        f'Operation cannot be fulfilled on ConfigMap "cm": the ResourceVersion in the precondition '
        f'({read["metadata"]["resourceVersion"]}) does not match the ResourceVersion in record '
        f'({changed["metadata"]["resourceVersion"]}). The object might have been modified')
    other = await client.send("DELETE", path, delete_options(uid=NO_SUCH_UID))
    assert other.status == 409 and "the UID in the precondition" in other.body["message"]
    assert (await cluster.get("configmaps", "cm", namespace=ns))["data"] == {"k": "v"}
    current = await client.send("DELETE", path, delete_options(uid=changed["metadata"]["uid"],
                                                               resourceVersion=changed["metadata"]["resourceVersion"]))
    assert current.status == 200


async def test_a_namespace_delete_checks_its_preconditions_in_its_own_words(client: Client, cluster: Cluster,
                                                                            ns: str) -> None:
    uid = (await cluster.get("namespaces", ns))["metadata"]["uid"]
    refused = await client.send("DELETE", f"/api/v1/namespaces/{ns}", delete_options(uid=NO_SUCH_UID))
    assert (refused.status, refused.body["details"]["kind"]) == (409, "namespaces")
    assert refused.body["message"] == (f'Operation cannot be fulfilled on namespaces "{ns}": Precondition failed: '
                                       f"UID in precondition: {NO_SUCH_UID}, UID in object meta: {uid}")
    assert "deletionTimestamp" not in (await cluster.get("namespaces", ns))["metadata"]


async def test_preconditions_of_the_wrong_type_are_a_bad_request(client: Client, cluster: Cluster, ns: str) -> None:
    await cluster.create("configmaps", configmap("cm"), namespace=ns)
    answer = await client.send("DELETE", client.configmap_path("cm"), delete_options(uid=5))
    assert (answer.status, answer.body["message"]) == (
        400, "json: cannot unmarshal number into Go struct field Preconditions.preconditions.uid of type types.UID")
    await cluster.get("configmaps", "cm", namespace=ns)
