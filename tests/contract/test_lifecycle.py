"""Namespaces, graceful pod deletion, finalizers and garbage collection."""

from __future__ import annotations

import uuid

import pytest

from gateway.cluster.interface import Cluster, Conflict, Forbidden, NotFound, PatchType, Propagation

from .helpers import configmap, next_event, owner_ref, pod, wait_for, wait_gone

ABSENT_NODE = "contract-absent-node"
"""A node no agent runs, so bound pods stay as the API server leaves them."""


async def test_a_new_namespace_gets_its_default_service_account(cluster: Cluster, ns: str) -> None:
    sa = await wait_for(cluster, "serviceaccounts", "default", namespace=ns, until=lambda o: o is not None)
    assert sa is not None and sa["metadata"]["namespace"] == ns


async def test_namespace_deletion_terminates_then_removes_contents_and_itself(cluster: Cluster) -> None:
    name = f"doomed-{uuid.uuid4().hex[:6]}"
    await cluster.create("namespaces", {"metadata": {"name": name}})
    await cluster.create("configmaps", configmap("held", finalizers=["example.com/hold"]), namespace=name)
    await cluster.create("configmaps", configmap("free"), namespace=name)
    await cluster.create("pods", pod("unbound"), namespace=name)
    deleted = await cluster.delete("namespaces", name)
    assert deleted["status"]["phase"] == "Terminating"
    assert deleted["metadata"]["deletionTimestamp"]
    await wait_gone(cluster, "configmaps", "free", namespace=name)
    await wait_gone(cluster, "pods", "unbound", namespace=name)
    # A finalizer keeps its object, and so the namespace, until it is removed.
    held = await cluster.get("configmaps", "held", namespace=name)
    assert held["metadata"]["deletionTimestamp"]
    assert (await cluster.get("namespaces", name))["status"]["phase"] == "Terminating"
    with pytest.raises(Forbidden) as err:
        await cluster.create("configmaps", configmap("late"), namespace=name)
    assert err.value.message == (
        f'configmaps "late" is forbidden: unable to create new content in namespace {name} '
        "because it is being terminated"
    )
    assert [c.reason for c in err.value.causes] == ["NamespaceTerminating"]
    # Deleting it again answers with the namespace as it stands (pkg/registry/core/namespace/storage REST.Delete).
    again = await cluster.delete("namespaces", name)
    assert (again["kind"], again["status"]["phase"]) == ("Namespace", "Terminating")
    assert again["metadata"]["deletionTimestamp"] == deleted["metadata"]["deletionTimestamp"]
    await cluster.patch("configmaps", "held", {"metadata": {"finalizers": None}}, namespace=name)
    await wait_gone(cluster, "namespaces", name)
    with pytest.raises(NotFound):
        await cluster.get("configmaps", "held", namespace=name)


async def test_a_bound_running_pod_is_deleted_gracefully(cluster: Cluster, ns: str) -> None:
    await cluster.create("pods", pod("graceful", terminationGracePeriodSeconds=45), namespace=ns)
    await cluster.bind_pod("graceful", ns, ABSENT_NODE)
    bound = await cluster.get("pods", "graceful", namespace=ns)
    assert bound["spec"]["nodeName"] == ABSENT_NODE
    assert any(c["type"] == "PodScheduled" and c["status"] == "True" for c in bound["status"]["conditions"])
    marked = await cluster.delete("pods", "graceful", namespace=ns)
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 45
    still = await cluster.get("pods", "graceful", namespace=ns)
    assert still["metadata"]["deletionGracePeriodSeconds"] == 45
    shorter = await cluster.delete("pods", "graceful", namespace=ns, grace_period_seconds=5)
    assert shorter["metadata"]["deletionGracePeriodSeconds"] == 5
    await cluster.delete("pods", "graceful", namespace=ns, grace_period_seconds=0)
    await wait_gone(cluster, "pods", "graceful", namespace=ns)


async def test_unbound_and_terminal_pods_go_at_once(cluster: Cluster, ns: str) -> None:
    await cluster.create("pods", pod("unbound"), namespace=ns)
    await cluster.delete("pods", "unbound", namespace=ns)
    with pytest.raises(NotFound):
        await cluster.get("pods", "unbound", namespace=ns)
    await cluster.create("pods", pod("done"), namespace=ns)
    await cluster.bind_pod("done", ns, ABSENT_NODE)
    await cluster.patch("pods", "done", {"status": {"phase": "Succeeded"}}, namespace=ns, subresource="status")
    await cluster.delete("pods", "done", namespace=ns)
    with pytest.raises(NotFound):
        await cluster.get("pods", "done", namespace=ns)


async def test_binding_a_bound_pod_conflicts(cluster: Cluster, ns: str) -> None:
    await cluster.create("pods", pod("once"), namespace=ns)
    await cluster.bind_pod("once", ns, ABSENT_NODE)
    with pytest.raises(Conflict) as err:
        await cluster.bind_pod("once", ns, "another-node")
    assert f'already assigned to node "{ABSENT_NODE}"' in err.value.message


async def test_log_of_a_pod_not_yet_started(cluster: Cluster, ns: str) -> None:
    await cluster.create("pods", pod("waiting"), namespace=ns)
    assert await cluster.read_pod_log("waiting", ns) == ""  # no node yet: an empty log (LogLocation)
    await cluster.bind_pod("waiting", ns, ABSENT_NODE)
    # The server asks the pod's node where its kubelet is before anything else: a node that is not there
    # is a 404 (the kubelet's own "waiting to start" answer needs a node that runs it: tests/test_apiserver_*).
    with pytest.raises(NotFound) as err:
        await cluster.read_pod_log("waiting", ns)
    assert err.value.message == f'pods "{ABSENT_NODE}" not found'


async def test_finalizers_hold_an_object_until_removed(cluster: Cluster, ns: str) -> None:
    await cluster.create("configmaps", configmap("held", finalizers=["example.com/hold"]), namespace=ns)
    marked = await cluster.delete("configmaps", "held", namespace=ns)
    assert marked["metadata"]["deletionTimestamp"]
    assert (await cluster.get("configmaps", "held", namespace=ns))["metadata"]["finalizers"] == ["example.com/hold"]
    await cluster.patch("configmaps", "held", [{"op": "remove", "path": "/metadata/finalizers"}], namespace=ns,
                        patch_type=PatchType.JSON)
    await wait_gone(cluster, "configmaps", "held", namespace=ns)


async def test_background_deletion_collects_dependents(cluster: Cluster, ns: str) -> None:
    owner = await cluster.create("configmaps", configmap("owner"), namespace=ns)
    await cluster.create("configmaps", configmap("dep", owners=[owner]), namespace=ns)
    await cluster.create("configmaps", configmap("grandchild", owners=[await cluster.get(
        "configmaps", "dep", namespace=ns)]), namespace=ns)
    other = await cluster.create("configmaps", configmap("other-owner"), namespace=ns)
    await cluster.create("configmaps", configmap("shared", owners=[owner, other]), namespace=ns)
    await cluster.delete("configmaps", "owner", namespace=ns, propagation_policy=Propagation.BACKGROUND)
    with pytest.raises(NotFound):
        await cluster.get("configmaps", "owner", namespace=ns)
    await wait_gone(cluster, "configmaps", "dep", namespace=ns)
    await wait_gone(cluster, "configmaps", "grandchild", namespace=ns)
    # A dependent with another live owner stays; the reference to the gone owner is dropped.
    shared = await wait_for(cluster, "configmaps", "shared", namespace=ns,
                            until=lambda o: o is not None and len(o["metadata"]["ownerReferences"]) == 1)
    assert shared is not None
    assert [r["name"] for r in shared["metadata"]["ownerReferences"]] == ["other-owner"]


async def test_foreground_deletion_waits_for_blocking_dependents(cluster: Cluster, ns: str) -> None:
    owner = await cluster.create("configmaps", configmap("owner"), namespace=ns)
    await cluster.create("configmaps", configmap("dep", owners=[owner], finalizers=["example.com/hold"]),
                         namespace=ns)
    marked = await cluster.delete("configmaps", "owner", namespace=ns, propagation_policy=Propagation.FOREGROUND)
    assert marked["metadata"]["deletionTimestamp"]
    owner_now = await wait_for(cluster, "configmaps", "owner", namespace=ns,
                               until=lambda o: o is not None and "foregroundDeletion" in o["metadata"]["finalizers"])
    assert owner_now is not None
    dep = await wait_for(cluster, "configmaps", "dep", namespace=ns,
                         until=lambda o: o is not None and bool(o["metadata"].get("deletionTimestamp")))
    assert dep is not None
    assert (await cluster.get("configmaps", "owner", namespace=ns))["metadata"]["deletionTimestamp"]
    await cluster.patch("configmaps", "dep", {"metadata": {"finalizers": None}}, namespace=ns)
    await wait_gone(cluster, "configmaps", "dep", namespace=ns)
    await wait_gone(cluster, "configmaps", "owner", namespace=ns)


async def test_orphan_deletion_keeps_dependents_without_the_reference(cluster: Cluster, ns: str) -> None:
    owner = await cluster.create("configmaps", configmap("owner"), namespace=ns)
    await cluster.create("configmaps", configmap("dep", owners=[owner]), namespace=ns)
    await cluster.delete("configmaps", "owner", namespace=ns, propagation_policy=Propagation.ORPHAN)
    await wait_gone(cluster, "configmaps", "owner", namespace=ns)
    dep = await wait_for(cluster, "configmaps", "dep", namespace=ns,
                         until=lambda o: o is not None and not o["metadata"].get("ownerReferences"))
    assert dep is not None


async def test_pods_owned_by_a_deleted_owner_are_collected(cluster: Cluster, ns: str) -> None:
    owner = await cluster.create("configmaps", configmap("kernel-owner"), namespace=ns)
    body = pod("kernel")
    body["metadata"]["ownerReferences"] = [owner_ref(owner)]
    await cluster.create("pods", body, namespace=ns)
    await cluster.delete("configmaps", "kernel-owner", namespace=ns)
    await wait_gone(cluster, "pods", "kernel", namespace=ns)


async def test_watchers_see_a_graceful_deletion_as_modified_then_deleted(cluster: Cluster, ns: str) -> None:
    await cluster.create("pods", pod("watched"), namespace=ns)
    await cluster.bind_pod("watched", ns, ABSENT_NODE)
    listed = await cluster.list("pods", namespace=ns)
    stream = cluster.watch("pods", namespace=ns, resource_version=listed["metadata"]["resourceVersion"])
    try:
        await cluster.delete("pods", "watched", namespace=ns)
        marked = await next_event(stream)
        # Cut to grace 0, the registry writes the shortened mark, then removes the pod (store.go
        # updateForGracefulDeletionAndFinalizers, then deleteImmediately).
        await cluster.delete("pods", "watched", namespace=ns, grace_period_seconds=0)
        cut = await next_event(stream)
        gone = await next_event(stream)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert marked.type == "MODIFIED" and marked.object["metadata"]["deletionTimestamp"]
    assert marked.object["metadata"]["deletionGracePeriodSeconds"] == 30
    assert cut.type == "MODIFIED" and cut.object["metadata"]["deletionGracePeriodSeconds"] == 0
    assert gone.type == "DELETED" and gone.object["metadata"]["name"] == "watched"
    assert gone.object["metadata"]["deletionGracePeriodSeconds"] == 0
    assert int(marked.resource_version) < int(cut.resource_version) < int(gone.resource_version)


async def test_an_unbound_pod_is_marked_then_removed(cluster: Cluster, ns: str) -> None:
    created = await cluster.create("pods", pod("unbound"), namespace=ns)
    assert created["metadata"]["generation"] == 1
    stream = cluster.watch("pods", namespace=ns, resource_version=created["metadata"]["resourceVersion"])
    try:
        deleted = await cluster.delete("pods", "unbound", namespace=ns)
        marked = await next_event(stream)
        gone = await next_event(stream)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    # rest.BeforeDelete marks every pod (grace 0 when unbound) and bumps its generation before removal.
    assert (marked.type, gone.type) == ("MODIFIED", "DELETED")
    for obj in (deleted, marked.object, gone.object):
        assert obj["metadata"]["deletionGracePeriodSeconds"] == 0 and obj["metadata"]["generation"] == 2
