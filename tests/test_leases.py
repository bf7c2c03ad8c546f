"""The duties' Lease: one replica leads, renews, steps down when it cannot renew, and hands over on release or death."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest

from fakes.auth.identity import service_account_user
from fakes.gateway_rbac import install_gateway_rbac
from fakes.memory import MemoryCluster
from fakes.state.store import Store
from gateway.cluster.interface import Cluster, ServiceUnavailable
from gateway.cluster.lease import LeaseElector, LeaseSettings
from gateway.cluster.leasestate import LeaseState, held_lease, parse_lease, released_lease

NAMESPACE = "enterprise-gateway"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
FAST = {"duration": 2.0, "renew_deadline": 1.2, "retry_period": 0.3}


# ---------------------------------------------------------------------- the Lease's rules (pure)


def test_a_held_lease_blocks_others_until_it_expires() -> None:
    state = parse_lease(held_lease("duties", NAMESPACE, None, identity="a", duration=15, now=T0))
    assert state.holder == "a" and state.duration_seconds == 15 and state.transitions == 0
    assert state.expires_at() == T0 + timedelta(seconds=15)
    assert state.held_by_another("b", T0 + timedelta(seconds=14.9))
    assert not state.held_by_another("b", T0 + timedelta(seconds=15))
    assert not state.held_by_another("a", T0 + timedelta(seconds=1))


def test_renewing_keeps_the_acquire_time_and_a_takeover_counts_a_transition() -> None:
    first = parse_lease(held_lease("duties", NAMESPACE, None, identity="a", duration=15, now=T0))
    renewed = parse_lease(held_lease("duties", NAMESPACE, first, identity="a", duration=15,
                                     now=T0 + timedelta(seconds=2)))
    assert renewed.acquire_time == T0 and renewed.renew_time == T0 + timedelta(seconds=2)
    assert renewed.transitions == 0
    taken = parse_lease(held_lease("duties", NAMESPACE, renewed, identity="b", duration=15,
                                   now=T0 + timedelta(seconds=20)))
    assert taken.holder == "b" and taken.acquire_time == T0 + timedelta(seconds=20) and taken.transitions == 1


def test_a_released_lease_is_free_at_once() -> None:
    held = parse_lease(held_lease("duties", NAMESPACE, None, identity="a", duration=15, now=T0))
    released = parse_lease(released_lease("duties", NAMESPACE, held, now=T0 + timedelta(seconds=1)))
    assert released.holder == "" and not released.held_by_another("b", T0 + timedelta(seconds=1))


def test_a_lease_with_missing_or_odd_fields_reads_as_free() -> None:
    assert parse_lease({}) == LeaseState()
    assert not parse_lease({"spec": {"holderIdentity": "a", "renewTime": "yesterday"}}).held_by_another("b", T0)


def test_the_durations_must_nest() -> None:
    with pytest.raises(ValueError):
        LeaseSettings(namespace=NAMESPACE, identity="a", duration=10, renew_deadline=10, retry_period=2)


# ---------------------------------------------------------------------- electors on the simulated cluster


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[Store, Cluster]]:
    store = Store()
    admin = MemoryCluster(store)
    await install_gateway_rbac(admin, NAMESPACE)
    gateway = MemoryCluster(store, service_account_user(NAMESPACE, "enterprise-gateway-sa"))
    yield store, gateway
    await gateway.close()
    await admin.close()


class Heard:
    """What an elector's listener heard, awaitable."""

    def __init__(self, elector: LeaseElector) -> None:
        self.changes: list[bool] = []
        self._event = asyncio.Event()
        elector.listen(self._heard)

    def _heard(self, leading: bool) -> None:
        self.changes.append(leading)
        self._event.set()

    async def reach(self, leading: bool, timeout: float) -> None:
        async def wait() -> None:
            while not self.changes or self.changes[-1] is not leading:
                self._event.clear()
                await self._event.wait()

        await asyncio.wait_for(wait(), timeout)


def elector(cluster: Cluster, identity: str) -> LeaseElector:
    return LeaseElector(cluster, LeaseSettings(namespace=NAMESPACE, identity=identity, **FAST))


async def test_the_first_replica_leads_and_renews_while_the_other_waits(cluster: tuple[Store, Cluster]) -> None:
    _, gateway = cluster
    a, b = elector(gateway, "a"), elector(gateway, "b")
    await a.start()
    await b.start()
    try:
        assert a.leading and not b.leading
        first = parse_lease(await gateway.get("leases", "kernelgate-duties", namespace=NAMESPACE))
        await asyncio.sleep(FAST["retry_period"] * 3)
        later = parse_lease(await gateway.get("leases", "kernelgate-duties", namespace=NAMESPACE))
        assert later.holder == "a" and later.renew_time is not None and first.renew_time is not None
        assert later.renew_time > first.renew_time and later.transitions == first.transitions
        assert a.leading and not b.leading
    finally:
        await b.stop()
        await a.stop()


async def test_a_released_lease_is_taken_by_the_other_replica(cluster: tuple[Store, Cluster]) -> None:
    _, gateway = cluster
    a, b = elector(gateway, "a"), elector(gateway, "b")
    await a.start()
    await b.start()
    heard = Heard(b)
    try:
        await a.stop()
        assert parse_lease(await gateway.get("leases", "kernelgate-duties", namespace=NAMESPACE)).holder == ""
        await heard.reach(True, timeout=FAST["duration"] + 1)
    finally:
        await b.stop()


async def test_a_dead_holder_is_replaced_within_the_lease_duration(cluster: tuple[Store, Cluster]) -> None:
    _, gateway = cluster
    a, b = elector(gateway, "a"), elector(gateway, "b")
    await a.start()
    await b.start()
    heard = Heard(b)
    try:
        await a.stop(release=False)  # killed: no renewal, no release
        loop = asyncio.get_running_loop()
        died = loop.time()
        await heard.reach(True, timeout=FAST["duration"] + 2)
        assert loop.time() - died <= FAST["duration"] + 1.0  # the lease duration, and a loaded machine's slack
        state = parse_lease(await gateway.get("leases", "kernelgate-duties", namespace=NAMESPACE))
        assert state.holder == "b" and state.transitions == 1
    finally:
        await b.stop()


async def test_a_holder_that_cannot_renew_steps_down_before_anyone_may_take_over(
        cluster: tuple[Store, Cluster]) -> None:
    store, gateway = cluster
    a = elector(gateway, "a")
    await a.start()
    heard = Heard(a)
    other = MemoryCluster(store, service_account_user(NAMESPACE, "enterprise-gateway-sa"))
    b = elector(other, "b")
    await b.start()
    try:
        store.faults.inject("update", "leases", error=ServiceUnavailable("etcd is away"), namespace=NAMESPACE)
        await heard.reach(False, timeout=FAST["renew_deadline"] + 1)
        assert not b.leading  # a stepped down before its claim expired: never two leaders
        store.faults.clear()  # the API is back: one of them leads again (a may take back its own Lease)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FAST["duration"] + 2
        while not (a.leading or b.leading):
            assert loop.time() < deadline, "nobody leads once the API is back"
            await asyncio.sleep(0.05)
        assert not (a.leading and b.leading)
    finally:
        await b.stop()
        await a.stop()
        await other.close()


async def test_two_replicas_starting_at_once_elect_one(cluster: tuple[Store, Cluster]) -> None:
    _, gateway = cluster
    electors = [elector(gateway, name) for name in "abcd"]
    await asyncio.gather(*(e.start() for e in electors))
    try:
        assert sum(e.leading for e in electors) == 1
    finally:
        await asyncio.gather(*(e.stop() for e in electors))
