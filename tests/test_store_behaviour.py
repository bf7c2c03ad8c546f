"""Store behaviour the contract suite cannot reach through the interface: versions, watches, logs, tokens."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fakes.auth.identity import ADMIN, service_account_user
from fakes.memory import MemoryCluster
from fakes.state.store import Store
from gateway.cluster.interface import (
    BadRequest,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    PatchType,
    Propagation,
    ServerError,
    ServiceUnavailable,
)
from gateway.cluster.resources import RESOURCES

PODS, CMS, NS, SA = (RESOURCES[r] for r in ("pods", "configmaps", "namespaces", "serviceaccounts"))


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "main", "image": "img"}], **spec}}


@pytest.fixture
def store() -> Store:
    return Store(watch_window=5, clock=lambda: 1_700_000_000.0)


def test_a_fresh_store_looks_like_a_fresh_cluster(store: Store) -> None:
    names = [n["metadata"]["name"] for n in store.list(NS, None)["items"]]
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
    for ns in names:
        assert store.get(SA, ns, "default")["metadata"]["namespace"] == ns
    assert store.get(RESOURCES["clusterroles"], None, "cluster-admin")
    assert store.get(NS, None, "default")["metadata"]["labels"] == {"kubernetes.io/metadata.name": "default"}
    assert store.get(NS, None, "default")["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20Z"


def test_list_items_carry_no_kind_of_their_own(store: Store) -> None:
    store.create(CMS, {"metadata": {"name": "x"}}, "default")
    [item] = store.list(CMS, "default", field_selector="metadata.name=x")["items"]
    assert "kind" not in item and "apiVersion" not in item
    assert store.get(CMS, "default", "x")["kind"] == "ConfigMap"


def test_a_no_op_write_keeps_the_version(store: Store) -> None:
    created = store.create(CMS, {"metadata": {"name": "x"}, "data": {"a": "1"}}, "default")
    again = store.patch(CMS, "default", "x", {"data": {"a": "1"}}, PatchType.MERGE)
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert store.resource_version == created["metadata"]["resourceVersion"]


def test_a_resource_version_on_create_is_refused(store: Store) -> None:
    with pytest.raises(Exception, match="resourceVersion should not be set on objects to be created"):
        store.create(CMS, {"metadata": {"name": "x", "resourceVersion": "5"}}, "default")


def test_finalizers_cannot_be_added_while_deleting(store: Store) -> None:
    store.create(CMS, {"metadata": {"name": "x", "finalizers": ["a/b"]}}, "default")
    store.delete(CMS, "default", "x")
    with pytest.raises(Invalid, match="no new finalizers can be added if the object is being deleted"):
        store.patch(CMS, "default", "x", {"metadata": {"finalizers": ["a/b", "c/d"]}}, PatchType.MERGE)


def test_deployments_count_generations_of_their_spec(store: Store) -> None:
    rt = RESOURCES["deployments"]
    body = {"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
                                               "template": {"metadata": {"labels": {"a": "b"}},
                                                            "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    assert store.create(rt, body, "default")["metadata"]["generation"] == 1
    assert store.patch(rt, "default", "d", {"metadata": {"labels": {"x": "y"}}}, PatchType.MERGE)[
        "metadata"]["generation"] == 1
    assert store.patch(rt, "default", "d", {"spec": {"replicas": 3}}, PatchType.MERGE)["metadata"]["generation"] == 2


def test_qos_classes(store: Store) -> None:
    def qos(resources: dict[str, Any]) -> str:
        name = f"p{len(store.list(PODS, 'default')['items'])}"
        body = {"metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": "i", "resources": resources}]}}
        return store.create(PODS, body, "default")["status"]["qosClass"]

    both = {"cpu": "1", "memory": "1Gi"}
    assert qos({}) == "BestEffort"
    assert qos({"limits": both}) == "Guaranteed"
    assert qos({"limits": both, "requests": both}) == "Guaranteed"
    assert qos({"requests": {"cpu": "1"}}) == "Burstable"


async def test_watch_versions_too_old_too_new_and_malformed(store: Store) -> None:
    first = store.create(CMS, {"metadata": {"name": "x"}}, "default")["metadata"]["resourceVersion"]
    for i in range(6):
        store.patch(CMS, "default", "x", {"data": {"i": str(i)}}, PatchType.MERGE)
    with pytest.raises(Gone, match=f"too old resource version: {first} "):
        store.watch(CMS, "default", None, None, first)
    with pytest.raises(ServerError, match='^resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": '
                                          "invalid syntax$"):
        store.watch(CMS, "default", None, None, "abc")
    # The newest version and one before it are within the window.
    store.watch(CMS, "default", None, None, str(int(store.resource_version) - 4)).close()
    assert store.open_watches() == 0


async def test_a_watch_from_a_version_not_reached_yet_opens_and_skips_the_writes_up_to_it(store: Store) -> None:
    ahead = int(store.resource_version) + 2
    stream = store.watch(CMS, "default", None, None, str(ahead))  # open before the store gets there
    for name in ("a", "b", "c"):
        store.create(CMS, {"metadata": {"name": name}}, "default")
    event = await asyncio.wait_for(stream.__anext__(), 5)
    assert (event.type, event.object["metadata"]["name"]) == ("ADDED", "c")
    assert int(event.object["metadata"]["resourceVersion"]) == ahead + 1
    stream.close()


async def test_bookmarks_arrive_when_the_resource_moves_past_a_quiet_watch() -> None:
    store = Store(bookmark_interval=0.01)
    watch = store.watch(CMS, "default", None, None, store.resource_version, allow_bookmarks=True)
    store.create(CMS, {"metadata": {"name": "elsewhere"}}, "kube-system")  # not in the watched namespace
    moved = store.resource_version
    store.create(PODS, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}, "default")
    event = await asyncio.wait_for(watch.__anext__(), 5)
    assert event.type == "BOOKMARK"
    assert event.object == {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": moved}}
    await watch.aclose()
    with pytest.raises(StopAsyncIteration):
        await watch.__anext__()


async def test_a_bookmark_never_overtakes_an_event_still_queued() -> None:
    # A client resumes from a bookmark's version: one sent ahead of a queued event would lose that
    # event for good if the stream then ended.  The watch cache sends both through one ordered
    # channel (cacher.go dispatchEvents), so a bookmark follows every event before its version.
    store = Store(bookmark_interval=0.0)  # a bookmark is due whenever the watch waits
    watch = store.watch(CMS, "default", None, None, store.resource_version, allow_bookmarks=True)
    store.create(CMS, {"metadata": {"name": "first"}}, "default")
    seen = []
    while len(seen) < 2:
        event = await asyncio.wait_for(watch.__anext__(), 5)
        seen.append((event.type, event.object["metadata"].get("name")))
        if len(seen) == 1:
            store.create(CMS, {"metadata": {"name": "second"}}, "default")
    assert seen == [("ADDED", "first"), ("ADDED", "second")]
    await watch.aclose()


async def test_dropping_watches_of_one_resource_spares_the_others(store: Store) -> None:
    pods = store.watch(PODS, None, None, None, store.resource_version)
    cms = store.watch(CMS, None, None, None, store.resource_version)
    assert store.faults.drop_watches("pods") == 1
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pods.__anext__(), 5)
    store.create(CMS, {"metadata": {"name": "x"}}, "default")
    assert (await asyncio.wait_for(cms.__anext__(), 5)).type == "ADDED"
    await cms.aclose()
    assert store.open_watches() == 0


async def test_closing_a_cluster_ends_its_watches(store: Store) -> None:
    cluster = MemoryCluster(store)
    stream = cluster.watch("configmaps", namespace="default", field_selector="metadata.name=x")
    store.create(CMS, {"metadata": {"name": "x"}}, "default")
    assert (await asyncio.wait_for(stream.__anext__(), 5)).type == "ADDED"
    await cluster.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(stream.__anext__(), 5)


async def test_faults_match_subresources_and_run_out(store: Store) -> None:
    cluster = MemoryCluster(store)
    store.create(PODS, _pod("p"), "default")
    store.faults.inject("get", "pods/log", error=ServiceUnavailable("kubelet down"), times=2)
    with pytest.raises(ServiceUnavailable):
        await cluster.read_pod_log("p", "default")
    assert (await cluster.get("pods", "p", namespace="default"))["metadata"]["name"] == "p"
    with pytest.raises(ServiceUnavailable):
        await cluster.read_pod_log("p", "default")
    assert len(store.faults) == 0
    assert await cluster.read_pod_log("p", "default") == ""  # not on a node yet: an empty log


def test_logs_come_from_the_node_agent(store: Store) -> None:
    calls = []

    def reader(namespace: str, pod: str, container: str, tail: int | None) -> str:
        calls.append((namespace, pod, container, tail))
        return "hello\n"

    store.register_node_logs("n1", reader)
    store.create(PODS, _pod("p", containers=[{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]), "default")
    store.bind_pod("default", "p", "n1")
    with pytest.raises(BadRequest, match=r"a container name must be specified for pod p, choose one of: \[a b\]"):
        store.read_log("default", "p")
    with pytest.raises(BadRequest, match="container c is not valid for pod p"):
        store.read_log("default", "p", "c")
    store.patch(PODS, "default", "p", {"status": {"containerStatuses": [
        {"name": "a", "state": {"running": {"startedAt": "2023-11-14T22:13:20Z"}}}]}}, PatchType.MERGE, "status")
    assert store.read_log("default", "p", "a", 10) == "hello\n"
    assert calls == [("default", "p", "a", 10)]
    with pytest.raises(BadRequest, match='container "b" in pod "p" is waiting to start: ContainerCreating'):
        store.read_log("default", "p", "b")


async def test_tokens_authenticate_until_their_account_is_deleted(store: Store) -> None:
    store.create(SA, {"metadata": {"name": "kernel"}}, "default")
    token, expires = store.create_token("default", "kernel", 3600)
    assert expires == 1_700_000_000.0 + 3600
    user = store.tokens.authenticate(token, store.service_account_exists)
    assert user is not None and user.name == "system:serviceaccount:default:kernel"
    with pytest.raises(Invalid, match="may not specify a duration less than 10 minutes"):
        store.create_token("default", "kernel", 60)
    store.delete(SA, "default", "kernel")
    assert store.tokens.authenticate(token, store.service_account_exists) is None
    with pytest.raises(NotFound):
        store.create_token("default", "kernel", 3600)


async def test_can_i_and_forbidden_for_a_service_account(store: Store) -> None:
    sa = store.create(SA, {"metadata": {"name": "kernel"}}, "default")
    cluster = MemoryCluster(store, service_account_user("default", "kernel", sa["metadata"]["uid"]))
    assert not await cluster.can_i("create", "pods", namespace="default")
    with pytest.raises(Forbidden) as err:
        await cluster.create_token("kernel", "default")
    assert 'cannot create resource "serviceaccounts/token"' in err.value.message
    with pytest.raises(Forbidden) as err:
        await cluster.bind_pod("p", "default", "n1")
    assert 'cannot create resource "pods/binding"' in err.value.message
    assert await MemoryCluster(store, ADMIN).can_i("create", "pods", namespace="default")


def test_subresources_a_resource_does_not_have_are_not_found(store: Store) -> None:
    store.create(CMS, {"metadata": {"name": "x"}}, "default")
    with pytest.raises(NotFound, match=r"the server could not find the requested resource \(configmaps/status\)"):
        store.patch(CMS, "default", "x", {"status": {"a": 1}}, PatchType.MERGE, "status")


def test_finalizing_a_namespace_removes_it(store: Store) -> None:
    store.create(NS, {"metadata": {"name": "stuck"}}, None)
    store.create(CMS, {"metadata": {"name": "held", "finalizers": ["a/b"]}}, "stuck")
    store.delete(NS, None, "stuck")
    assert store.get(NS, None, "stuck")["spec"] == {"finalizers": ["kubernetes"]}
    store.replace(NS, None, "stuck", {"metadata": {"name": "stuck"}, "spec": {"finalizers": []}}, "finalize")
    with pytest.raises(NotFound):
        store.get(NS, None, "stuck")


def test_the_default_service_account_comes_back(store: Store) -> None:
    old = store.get(SA, "default", "default")
    store.delete(SA, "default", "default")
    again = store.get(SA, "default", "default")
    assert again["metadata"]["uid"] != old["metadata"]["uid"]
    store.create(NS, {"metadata": {"name": "going"}}, None)
    store.create(CMS, {"metadata": {"name": "held", "finalizers": ["a/b"]}}, "going")
    store.delete(NS, None, "going")
    with pytest.raises(NotFound):
        store.get(SA, "going", "default")


def test_foreground_deletion_of_an_ownership_cycle_terminates(store: Store) -> None:
    a = store.create(CMS, {"metadata": {"name": "a"}}, "default")
    b = store.create(CMS, {"metadata": {"name": "b", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "a", "uid": a["metadata"]["uid"]}]}}, "default")
    store.patch(CMS, "default", "a", {"metadata": {"ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "b", "uid": b["metadata"]["uid"]}]}}, PatchType.MERGE)
    store.delete(CMS, "default", "a", propagation_policy=Propagation.FOREGROUND)
    assert [c["metadata"]["name"] for c in store.list(CMS, "default")["items"]] == ["kube-root-ca.crt"]
