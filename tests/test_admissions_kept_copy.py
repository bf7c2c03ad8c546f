"""Admissions written from the replica's kept copy of the ConfigMap, and starts at once written together:
a read spared, no conflict within a replica, never a wrong decision."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from fakes.auth.identity import service_account_user
from fakes.gateway_rbac import install_gateway_rbac
from fakes.memory import MemoryCluster
from fakes.state.store import Store
from gateway.cluster.interface import Cluster
from gateway.kernels.admissions import ADMISSIONS_NAME, Admissions
from gateway.kernels.errors import KernelLimitReached
from tests.counting import CountingCluster

NAMESPACE = "enterprise-gateway"


@pytest.fixture
async def clusters() -> AsyncIterator[tuple[Cluster, list[CountingCluster]]]:
    store = Store()
    admin = MemoryCluster(store)
    await install_gateway_rbac(admin, NAMESPACE)
    replicas = [CountingCluster(MemoryCluster(store, service_account_user(NAMESPACE, "enterprise-gateway-sa")))
                for _ in range(2)]
    yield admin, replicas
    for cluster in replicas:
        await cluster.close()
    await admin.close()


async def test_a_replica_alone_reads_the_admissions_once(clusters: tuple[Cluster, list[CountingCluster]]) -> None:
    admin, (cluster, _) = clusters
    recorded: set[str] = set()
    admissions = Admissions(cluster, NAMESPACE, recorded.__contains__, recorded_ids=lambda: recorded)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for kernel_id in ids:
        recorded.add(kernel_id)  # the kernel service records a kernel before admitting it
        await admissions.admit(kernel_id, "alice", max_kernels=None, max_per_user=None)
    await admissions.release(ids[0])
    assert cluster.calls[("get", "configmaps")] == 1
    assert cluster.calls[("replace", "configmaps")] == 4
    data = (await admin.get("configmaps", ADMISSIONS_NAME, namespace=NAMESPACE))["data"]
    assert data == {ids[1]: "alice", ids[2]: "alice"}


async def test_a_copy_behind_another_replica_is_read_again(clusters: tuple[Cluster, list[CountingCluster]]) -> None:
    admin, (first_cluster, second_cluster) = clusters
    recorded: set[str] = set()
    first = Admissions(first_cluster, NAMESPACE, recorded.__contains__, recorded_ids=lambda: recorded)
    second = Admissions(second_cluster, NAMESPACE, recorded.__contains__, recorded_ids=lambda: recorded)
    one, two, three = (str(uuid.uuid4()) for _ in range(3))
    recorded.add(one)
    await first.admit(one, "alice", max_kernels=2, max_per_user=None)
    recorded.add(two)
    await second.admit(two, "bob", max_kernels=2, max_per_user=None)
    recorded.add(three)  # the first replica's copy holds one kernel: the limit is judged on a fresh read
    with pytest.raises(KernelLimitReached):
        await first.admit(three, "carol", max_kernels=2, max_per_user=None)
    recorded.discard(three)
    data = (await admin.get("configmaps", ADMISSIONS_NAME, namespace=NAMESPACE))["data"]
    assert data == {one: "alice", two: "bob"}


async def test_a_stale_copy_the_hint_misses_costs_a_conflict_only(
        clusters: tuple[Cluster, list[CountingCluster]]) -> None:
    admin, (first_cluster, second_cluster) = clusters
    recorded: set[str] = set()
    first = Admissions(first_cluster, NAMESPACE, recorded.__contains__, recorded_ids=lambda: recorded)
    second = Admissions(second_cluster, NAMESPACE, lambda _: True)
    one, two, three = (str(uuid.uuid4()) for _ in range(3))
    recorded.add(one)
    await first.admit(one, "alice", max_kernels=None, max_per_user=1)
    await second.admit(two, "bob", max_kernels=None, max_per_user=1)  # its record not yet seen by the first replica
    recorded.add(three)
    await first.admit(three, "carol", max_kernels=None, max_per_user=1)
    data = (await admin.get("configmaps", ADMISSIONS_NAME, namespace=NAMESPACE))["data"]
    assert data == {one: "alice", two: "bob", three: "carol"}
    assert first_cluster.calls[("replace", "configmaps")] == 3  # one refused with 409, then written after a read


async def test_starts_at_once_in_one_replica_are_written_together(
        clusters: tuple[Cluster, list[CountingCluster]]) -> None:
    admin, (cluster, _) = clusters
    recorded: set[str] = set()
    admissions = Admissions(cluster, NAMESPACE, recorded.__contains__, recorded_ids=lambda: recorded)
    ids = [str(uuid.uuid4()) for _ in range(16)]
    recorded.update(ids)
    users = ["alice", "bob"] * 8
    results = await asyncio.gather(*(admissions.admit(kernel_id, user, max_kernels=7, max_per_user=4)
                                     for kernel_id, user in zip(ids, users, strict=True)), return_exceptions=True)
    # Decided in the order asked: the first seven (alice four, bob three), then the total is at its limit.
    assert [r is None for r in results] == [True] * 7 + [False] * 9
    assert all(isinstance(r, KernelLimitReached) for r in results[7:])
    assert cluster.calls[("replace", "configmaps")] == 1  # one write for all sixteen, no 409 among them
    await asyncio.gather(*(admissions.release(kernel_id) for kernel_id in ids[:7]))
    assert cluster.calls[("replace", "configmaps")] == 2
    assert (await admin.get("configmaps", ADMISSIONS_NAME, namespace=NAMESPACE)).get("data") in (None, {})
