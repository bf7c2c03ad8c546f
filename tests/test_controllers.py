"""The controller manager's controllers on the in-memory cluster: Deployments, ReplicaSets, endpoints.

The controllers run as kube-controller-manager does (watching as ``system:kube-controller-manager``,
writing as their own service accounts).  Pods are not run: a stand-in kubelet (:class:`PodStatuses`)
gives each new pod an IP and the ``Ready`` condition the test decides, so a test controls when a
rollout may go on.  Every wait is a watch with a timeout (tests/objectwait.py).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fakes.auth.bootstrap_roles import KUBE_CONTROLLER_MANAGER
from fakes.auth.identity import AUTHENTICATED, UserInfo, service_account_user
from fakes.controllers.manager import ControllerManager
from fakes.controllers.templates import HASH_LABEL, REVISION, template_hash
from fakes.memory import MemoryCluster
from fakes.state.store import Store
from gateway.aio import OwnedTasks
from gateway.cluster.interface import Cluster, Obj
from tests.kubeletharness import admin_fixture, store_fixture  # noqa: F401  (fixtures: admin, store)
from tests.objectwait import wait_for_items, wait_for_object

NS = "default"
SELECTOR = "app=web"


class PodStatuses:
    """Plays the kubelet's status writes: each new pod gets phase Running, an IP and ``Ready`` as
    :attr:`ready_by_default` says; :meth:`set_ready` changes it later."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.ready_by_default = True
        self._ips = (f"10.244.0.{n}" for n in itertools.count(2))
        self._tasks = OwnedTasks("pod statuses")
        self._started = asyncio.Event()

    async def start(self) -> None:
        self._tasks.spawn(self._run(), "pod watch")
        await self._started.wait()

    async def stop(self) -> None:
        await self._tasks.cancel_all()

    async def _run(self) -> None:
        stream = self.cluster.watch("pods", namespace=NS)
        self._started.set()
        try:
            async for event in stream:
                if event.type == "ADDED" and not (event.object.get("status") or {}).get("podIP"):
                    await self._write(event.object["metadata"]["name"], self.ready_by_default, next(self._ips))
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    async def set_ready(self, name: str, ready: bool) -> None:
        await self._write(name, ready)

    async def _write(self, name: str, ready: bool, ip: str | None = None) -> None:
        status: dict[str, Any] = {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": None}],
        }
        if ip:
            status["podIP"] = ip
        await self.cluster.patch("pods", name, {"status": status}, namespace=NS, subresource="status")


@pytest.fixture
async def statuses(admin: Cluster) -> AsyncIterator[PodStatuses]:
    kubelet = PodStatuses(admin)
    await kubelet.start()
    yield kubelet
    await kubelet.stop()


@pytest.fixture
async def manager(store: Store, statuses: PodStatuses) -> AsyncIterator[ControllerManager]:
    own = MemoryCluster(store, UserInfo(KUBE_CONTROLLER_MANAGER, (AUTHENTICATED,)))
    manager = ControllerManager(own, lambda ns, name, uid: MemoryCluster(store, service_account_user(ns, name, uid)))
    async with manager:
        yield manager


def deployment(replicas: int = 2, *, image: str = "web:1", strategy: dict | None = None) -> Obj:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image, "ports": [{"name": "http", "containerPort": 8080}]}]},
        },
    }
    if strategy is not None:
        spec["strategy"] = strategy
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS}, "spec": spec}


def image_patch(image: str) -> dict:
    """A merge patch changing the template's image (a new ReplicaSet)."""
    return {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": image, "ports": [{"name": "http", "containerPort": 8080}]}]}}}}


def ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def active(pods: list[Obj]) -> list[Obj]:
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def rolled_out(replicas: int):
    def check(d: Obj | None) -> bool:
        status = (d or {}).get("status") or {}
        return (d is not None and status.get("observedGeneration") == d["metadata"]["generation"]
                and status.get("replicas", 0) == status.get("updatedReplicas", 0) == replicas
                and status.get("readyReplicas", 0) == status.get("availableReplicas", 0) == replicas)
    check.__doc__ = f"rolled out with {replicas} ready replicas"
    return check


async def test_a_deployment_gets_a_replicaset_per_template_and_its_pods(admin, manager):
    created = await admin.create("deployments", deployment(), namespace=NS)
    done = await wait_for_object(admin, "deployments", NS, "web", rolled_out(2))
    assert done is not None
    (rs,) = (await admin.list("replicasets", namespace=NS))["items"]
    hash_value = rs["metadata"]["labels"][HASH_LABEL]
    assert hash_value == template_hash(created["spec"]["template"])
    assert rs["metadata"]["name"] == f"web-{hash_value}"
    assert rs["metadata"]["annotations"][REVISION] == "1"
    assert rs["metadata"]["ownerReferences"] == [{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": created["metadata"]["uid"],
        "controller": True, "blockOwnerDeletion": True,
    }]
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", HASH_LABEL: hash_value}
    pods = (await admin.list("pods", namespace=NS, label_selector=SELECTOR))["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["metadata"]["name"].startswith(f"web-{hash_value}-")
        assert pod["metadata"]["labels"] == {"app": "web", HASH_LABEL: hash_value}
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
    conditions = {c["type"]: c for c in done["status"]["conditions"]}
    assert conditions["Available"]["status"] == "True"
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert rs["status"]["readyReplicas"] == 2 and rs["status"]["availableReplicas"] == 2


async def test_scaling_up_and_down_creates_and_deletes_pods(admin, manager):
    await admin.create("deployments", deployment(2), namespace=NS)
    await wait_for_object(admin, "deployments", NS, "web", rolled_out(2))
    await admin.patch("deployments", "web", {"spec": {"replicas": 4}}, namespace=NS)
    await wait_for_object(admin, "deployments", NS, "web", rolled_out(4))
    assert len(active((await admin.list("pods", namespace=NS))["items"])) == 4
    await admin.patch("deployments", "web", {"spec": {"replicas": 1}}, namespace=NS)
    await wait_for_object(admin, "deployments", NS, "web", rolled_out(1))
    await wait_for_items(admin, "pods", NS, lambda pods: len(pods) == 1)
    assert len((await admin.list("replicasets", namespace=NS))["items"]) == 1


async def test_a_deleted_pod_is_replaced(admin, manager):
    await admin.create("deployments", deployment(2), namespace=NS)
    await wait_for_object(admin, "deployments", NS, "web", rolled_out(2))
    before = {p["metadata"]["name"] for p in (await admin.list("pods", namespace=NS))["items"]}
    victim = sorted(before)[0]
    await admin.delete("pods", victim, namespace=NS)
    pods = await wait_for_items(
        admin, "pods", NS, lambda pods: len(active(pods)) == 2 and victim not in {p["metadata"]["name"] for p in pods})
    assert len({p["metadata"]["name"] for p in pods} - before) == 1
    await wait_for_object(admin, "deployments", NS, "web", rolled_out(2))


async def test_a_failed_pod_is_replaced(admin, manager):
    await admin.create("deployments", deployment(1), namespace=NS)
    await wait_for_object(admin, "deployments", NS, "web", rolled_out(1))
    (pod,) = (await admin.list("pods", namespace=NS))["items"]
    await admin.patch("pods", pod["metadata"]["name"], {"status": {"phase": "Failed", "conditions": []}},
                      namespace=NS, subresource="status")
    pods = await wait_for_items(
        admin, "pods", NS, lambda pods: sorted(p["status"].get("phase", "") for p in pods) == ["Failed", "Running"])
    assert pod["metadata"]["name"] in {p["metadata"]["name"] for p in pods}
    await wait_for_object(admin, "deployments", NS, "web", rolled_out(1))


async def test_a_rolling_update_never_drops_below_the_ready_replicas_its_strategy_keeps(admin, manager, statuses):
    """maxSurge 1, maxUnavailable 0 (what 25%/25% make of 2 replicas): a new pod must be ready before an old one goes."""
    await admin.create("deployments", deployment(2), namespace=NS)
    await wait_for_object(admin, "deployments", NS, "web", rolled_out(2))
    statuses.ready_by_default = False
    lowest: list[int] = []
    watching = asyncio.Event()

    async def count_ready() -> None:
        stream = admin.watch("pods", namespace=NS)
        pods: dict[str, Obj] = {}
        try:
            async for event in stream:
                name = event.object["metadata"]["name"]
                if event.type == "DELETED":
                    pods.pop(name, None)
                else:
                    pods[name] = event.object
                if event.type == "ADDED" and len(pods) == 2:
                    watching.set()
                lowest.append(sum(ready(p) for p in active(list(pods.values()))))
        finally:
            await stream.aclose()

    counter = asyncio.create_task(count_ready())
    try:
        await watching.wait()
        await admin.patch("deployments", "web", image_patch("web:2"), namespace=NS)
        for _ in range(2):
            new_pods = await wait_for_items(
                admin, "pods", NS,
                lambda pods: any(p["spec"]["containers"][0]["image"] == "web:2" and not ready(p) for p in active(pods)))
            # While the new pod is not ready, both old ones stay.
            old = [p for p in active(new_pods) if p["spec"]["containers"][0]["image"] == "web:1"]
            assert len(old) + sum(p["spec"]["containers"][0]["image"] == "web:2" for p in active(new_pods)) <= 3
            assert sum(ready(p) for p in active(new_pods)) >= 2
            unready = next(p for p in active(new_pods) if p["spec"]["containers"][0]["image"] == "web:2" and not ready(p))
            await statuses.set_ready(unready["metadata"]["name"], True)
        done = await wait_for_object(admin, "deployments", NS, "web", rolled_out(2))
        assert done is not None
    finally:
        counter.cancel()
        await asyncio.gather(counter, return_exceptions=True)
    assert lowest and min(lowest[lowest.index(2):]) >= 2
    pods = active((await admin.list("pods", namespace=NS))["items"])
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"web:2"}
    replicasets = {rs["metadata"]["annotations"][REVISION]: rs for rs in (await admin.list("replicasets", namespace=NS))["items"]}
    assert replicasets["1"]["spec"]["replicas"] == 0 and replicasets["2"]["spec"]["replicas"] == 2


async def test_recreate_stops_every_old_pod_before_starting_new_ones(admin, manager):
    await admin.create("deployments", deployment(2, strategy={"type": "Recreate"}), namespace=NS)
    await wait_for_object(admin, "deployments", NS, "web", rolled_out(2))
    await admin.patch("deployments", "web", {"spec": {"template": {"metadata": {"labels": {"app": "web", "v": "2"}}}}},
                      namespace=NS)
    seen = []

    def record(pods: list[Obj]) -> bool:
        seen.append({p["metadata"]["labels"].get("v", "1") for p in active(pods)})
        return len(active(pods)) == 2 and all(p["metadata"]["labels"].get("v") == "2" for p in pods)

    await wait_for_items(admin, "pods", NS, record)
    assert not any(versions == {"1", "2"} for versions in seen)
    await wait_for_object(admin, "deployments", NS, "web", rolled_out(2))


SERVICE = {
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
    "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
}


def slice_endpoints(slices: list[Obj]) -> dict[str, bool]:
    return {e["addresses"][0]: e["conditions"]["ready"] for s in slices for e in s.get("endpoints") or []}


async def test_endpoints_and_slices_follow_pod_readiness(admin, manager, statuses):
    await admin.create("services", SERVICE, namespace=NS)
    await admin.create("deployments", deployment(2), namespace=NS)
    await wait_for_object(admin, "deployments", NS, "web", rolled_out(2))
    endpoints = await wait_for_object(
        admin, "endpoints", NS, "web", lambda ep: ep is not None and len((ep.get("subsets") or [{}])[0].get("addresses") or []) == 2)
    assert endpoints is not None
    (subset,) = endpoints["subsets"]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    pods = {p["status"]["podIP"]: p for p in (await admin.list("pods", namespace=NS))["items"]}
    assert {a["ip"] for a in subset["addresses"]} == set(pods)
    slices = await wait_for_items(admin, "endpointslices", NS, lambda s: set(slice_endpoints(s).values()) == {True},
                                  label_selector="kubernetes.io/service-name=web")
    assert slice_endpoints(slices).keys() == pods.keys()
    assert slices[0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert slices[0]["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"

    ip, pod = sorted(pods.items())[0]
    await statuses.set_ready(pod["metadata"]["name"], False)
    endpoints = await wait_for_object(
        admin, "endpoints", NS, "web", lambda ep: [a["ip"] for a in (ep or {}).get("subsets", [{}])[0].get("notReadyAddresses", [])] == [ip])
    assert endpoints is not None and [a["ip"] for a in endpoints["subsets"][0]["addresses"]] != [ip]
    await wait_for_items(admin, "endpointslices", NS, lambda s: slice_endpoints(s).get(ip) is False,
                         label_selector="kubernetes.io/service-name=web")

    await admin.delete("services", "web", namespace=NS)
    await wait_for_object(admin, "endpoints", NS, "web", lambda ep: ep is None)
    await wait_for_items(admin, "endpointslices", NS, lambda s: not s)


async def test_the_controllers_write_as_their_service_accounts(admin, manager, store):
    await admin.create("deployments", deployment(1), namespace=NS)
    await wait_for_object(admin, "deployments", NS, "web", rolled_out(1))
    accounts = {sa["metadata"]["name"] for sa in (await admin.list("serviceaccounts", namespace="kube-system"))["items"]}
    assert {"deployment-controller", "replicaset-controller", "endpoint-controller",
            "endpointslice-controller"} <= accounts
    events = (await admin.list("events", namespace=NS))["items"]
    sources = {(e["involvedObject"]["kind"], e["reason"], e["source"]["component"]) for e in events}
    assert ("Deployment", "ScalingReplicaSet", "deployment-controller") in sources
    assert ("ReplicaSet", "SuccessfulCreate", "replicaset-controller") in sources
    # The replicaset controller's role lets it create pods, not deployments.
    rs_controller = MemoryCluster(store, service_account_user("kube-system", "replicaset-controller"))
    assert await rs_controller.can_i("create", "pods", namespace=NS)
    assert not await rs_controller.can_i("create", "deployments", namespace=NS, group="apps")


async def test_going_back_to_an_earlier_template_reuses_its_replicaset_as_the_newest_revision(admin, manager):
    await admin.create("deployments", deployment(2), namespace=NS)
    await wait_for_object(admin, "deployments", NS, "web", rolled_out(2))
    await admin.patch("deployments", "web", image_patch("web:2"), namespace=NS)
    await wait_for_object(admin, "deployments", NS, "web", rolled_out(2))
    await admin.patch("deployments", "web", image_patch("web:1"), namespace=NS)
    await wait_for_object(admin, "deployments", NS, "web", rolled_out(2))
    replicasets = (await admin.list("replicasets", namespace=NS))["items"]
    revisions = {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["metadata"]["annotations"][REVISION]
                 for rs in replicasets}
    assert revisions == {"web:1": "3", "web:2": "2"}
    pods = active((await admin.list("pods", namespace=NS))["items"])
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"web:1"}
