"""Kernel limits counted across replicas: admissions in one ConfigMap, written under optimistic concurrency."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from fakes.auth.identity import service_account_user
from fakes.gateway_rbac import install_gateway_rbac
from fakes.memory import MemoryCluster
from fakes.state.store import Store
from gateway.cluster.informer import Informer
from gateway.cluster.interface import Cluster, NotFound, ServiceUnavailable
from gateway.kernels.admissions import ADMISSIONS_NAME, Admissions, AdmissionsUnavailable, replica_admissions
from gateway.kernels.errors import KernelConflict, KernelLimitReached
from gateway.kernels.records import RecordStore
from gateway.kernels.settings import KernelSettings
from tests.counting import CountingCluster

NAMESPACE = "enterprise-gateway"


@pytest.fixture
async def clusters() -> AsyncIterator[tuple[Store, Cluster, list[Cluster]]]:
    store = Store()
    admin = MemoryCluster(store)
    await install_gateway_rbac(admin, NAMESPACE)
    replicas: list[Cluster] = [MemoryCluster(store, service_account_user(NAMESPACE, "enterprise-gateway-sa"))
                               for _ in range(3)]
    yield store, admin, replicas
    for cluster in replicas:
        await cluster.close()
    await admin.close()


def never_recorded(kernel_id: str) -> bool:
    return True  # every admitted kernel has a record: nothing is an orphan here


async def test_limits_hold_when_replicas_admit_at_once(clusters: tuple[Store, Cluster, list[Cluster]]) -> None:
    _, admin, replicas = clusters
    admissions = [Admissions(cluster, NAMESPACE, never_recorded) for cluster in replicas]
    await admissions[0].ensure()
    users = ["alice", "bob", "carol", "dave"] * 6
    results = await asyncio.gather(*(
        admissions[i % 3].admit(str(uuid.uuid4()), user, max_kernels=5, max_per_user=2)
        for i, user in enumerate(users)), return_exceptions=True)
    admitted = [r for r in results if r is None]
    refused = [r for r in results if isinstance(r, KernelLimitReached)]
    assert len(admitted) == 5 and len(refused) == len(users) - 5, results
    data = (await admin.get("configmaps", ADMISSIONS_NAME, namespace=NAMESPACE))["data"]
    assert len(data) == 5 and all(list(data.values()).count(user) <= 2 for user in set(users))


async def test_an_id_is_admitted_once_and_released(clusters: tuple[Store, Cluster, list[Cluster]]) -> None:
    _, admin, replicas = clusters
    one, other = Admissions(replicas[0], NAMESPACE, never_recorded), Admissions(replicas[1], NAMESPACE, never_recorded)
    kernel_id = str(uuid.uuid4())
    await one.admit(kernel_id, "alice", max_kernels=None, max_per_user=1)
    with pytest.raises(KernelConflict):
        await other.admit(kernel_id, "alice", max_kernels=None, max_per_user=None)
    with pytest.raises(KernelLimitReached):
        await other.admit(str(uuid.uuid4()), "alice", max_kernels=None, max_per_user=1)
    await other.release(kernel_id)
    await one.admit(str(uuid.uuid4()), "alice", max_kernels=None, max_per_user=1)
    assert list((await admin.get("configmaps", ADMISSIONS_NAME, namespace=NAMESPACE))["data"].values()) == ["alice"]


async def test_a_long_username_is_counted_by_its_digest(clusters: tuple[Store, Cluster, list[Cluster]]) -> None:
    """A client names its own user: a 4,000-character name takes ~110 bytes of the ledger, not 4 KB, so a few
    hundred such kernels cannot fill the ConfigMap past what an API server stores; its limit still holds."""
    _, admin, replicas = clusters
    admissions = Admissions(replicas[0], NAMESPACE, never_recorded)
    long_name = "u" * 4000
    await admissions.admit(str(uuid.uuid4()), long_name, max_kernels=None, max_per_user=1)
    with pytest.raises(KernelLimitReached):
        await admissions.admit(str(uuid.uuid4()), long_name, max_kernels=None, max_per_user=1)
    await admissions.admit(str(uuid.uuid4()), long_name[:-1] + "v", max_kernels=None, max_per_user=1)
    await admissions.admit(str(uuid.uuid4()), "alice", max_kernels=None, max_per_user=1)
    kept = list((await admin.get("configmaps", ADMISSIONS_NAME, namespace=NAMESPACE))["data"].values())
    assert sorted(kept, key=len)[0] == "alice" and len(kept) == 3, kept
    assert all(v.startswith("sha256:") and len(v) == 71 for v in kept if v != "alice"), kept


async def test_an_admission_without_a_record_is_dropped_after_the_grace(
        clusters: tuple[Store, Cluster, list[Cluster]]) -> None:
    _, admin, replicas = clusters
    recorded: set[str] = set()
    died = Admissions(replicas[0], NAMESPACE, recorded.__contains__)
    orphan = str(uuid.uuid4())
    await died.admit(orphan, "alice", max_kernels=1, max_per_user=None)  # its replica dies before recording it
    live = Admissions(replicas[1], NAMESPACE, recorded.__contains__, orphan_grace=0.2)
    with pytest.raises(KernelLimitReached):  # first seen without a record: within the grace, it still counts
        await live.admit(str(uuid.uuid4()), "bob", max_kernels=1, max_per_user=None)
    await asyncio.sleep(0.3)
    fresh = str(uuid.uuid4())
    await live.admit(fresh, "bob", max_kernels=1, max_per_user=None)
    assert (await admin.get("configmaps", ADMISSIONS_NAME, namespace=NAMESPACE))["data"] == {fresh: "bob"}


async def test_an_unavailable_api_refuses_with_503(clusters: tuple[Store, Cluster, list[Cluster]]) -> None:
    store, _, replicas = clusters
    admissions = Admissions(replicas[0], NAMESPACE, never_recorded)
    store.faults.inject("*", "configmaps", error=ServiceUnavailable("etcd is away"))
    with pytest.raises(AdmissionsUnavailable) as refused:
        await admissions.admit(str(uuid.uuid4()), "alice", max_kernels=None, max_per_user=None)
    assert refused.value.status == 503


async def test_a_gateway_without_limits_keeps_no_admissions(clusters: tuple[Store, Cluster, list[Cluster]]) -> None:
    """No limit set: a start and an end cost no request, and no ConfigMap grows with the kernels."""
    _, admin, replicas = clusters
    counting = CountingCluster(replicas[0])
    store = RecordStore(counting, Informer(counting, "secrets", namespace=NAMESPACE), NAMESPACE)
    admissions = replica_admissions(counting, NAMESPACE, store, KernelSettings())
    await admissions.ensure()
    kernel_id = str(uuid.uuid4())
    await admissions.admit(kernel_id, "alice", max_kernels=None, max_per_user=None)
    await admissions.release(kernel_id)
    assert counting.calls == {}
    with pytest.raises(NotFound):
        await admin.get("configmaps", ADMISSIONS_NAME, namespace=NAMESPACE)
    assert replica_admissions(counting, NAMESPACE, store, KernelSettings(max_kernels_per_user=2)).keeps_ledger


async def test_a_limit_set_later_counts_the_kernels_started_without_it(
        clusters: tuple[Store, Cluster, list[Cluster]]) -> None:
    """Kernels running since before a limit was set have records but no admission: they count all the same,
    and a replica alone still writes from its kept copy (one read)."""
    _, _, replicas = clusters
    counting = CountingCluster(replicas[0])
    running = {str(uuid.uuid4()): "alice", str(uuid.uuid4()): "bob"}
    recorded = set(running)
    admissions = Admissions(counting, NAMESPACE, recorded.__contains__, recorded_ids=lambda: recorded,
                            settled=lambda: running)
    carol = str(uuid.uuid4())
    recorded.add(carol)
    await admissions.admit(carol, "carol", max_kernels=3, max_per_user=None)
    with pytest.raises(KernelLimitReached) as full:
        await admissions.admit(str(uuid.uuid4()), "dave", max_kernels=3, max_per_user=None)
    assert "has 3 running or starting" in full.value.message
    with pytest.raises(KernelLimitReached):
        await admissions.admit(str(uuid.uuid4()), "alice", max_kernels=None, max_per_user=1)
    bob = str(uuid.uuid4())
    recorded.add(bob)
    await admissions.admit(bob, "bob", max_kernels=None, max_per_user=2)
    assert counting.calls[("get", "configmaps")] <= 3  # the first read, and one for each refusal only
