"""The informer keeps a cache equal to what the cluster lists, through watch
ends, expired versions and API errors, and idles on a single watch.

Runs against the in-memory simulated cluster; ``tests.counting.CountingCluster`` wraps it to
count the calls an informer makes.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes.auth.identity import ADMIN
from fakes.memory import MemoryCluster
from fakes.state.store import Store
from gateway.aio import Backoff
from gateway.cluster import informer as informer_module
from gateway.cluster.informer import Informer, InformerStopped
from gateway.cluster.interface import Gone, ServiceUnavailable, WatchEvent
from tests.counting import CountingCluster
from tests.loop_tasks import describe, unfinished_tasks

NS = "kernels"
TIMEOUT = 5.0  # generous bound for anything that should happen at once


def pod(name: str, labels: dict[str, str] | None = None, ns: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": {"containers": [{"name": "kernel", "image": "kernel-py"}]},
    }


def phase(obj: dict[str, Any] | None) -> str | None:
    return None if obj is None else (obj.get("status") or {}).get("phase")


def snapshot(objects: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """What must agree between cache and list: each object's identity and version."""
    return {(o["metadata"]["namespace"], o["metadata"]["name"]): o["metadata"]["resourceVersion"] for o in objects}


async def open_cluster(**store_options: Any) -> tuple[Store, MemoryCluster]:
    store = Store(**store_options)
    cluster = MemoryCluster(store, ADMIN)
    await cluster.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return store, cluster


@pytest.fixture
async def env() -> Any:
    store, cluster = await open_cluster()
    yield store, cluster
    await cluster.close()


async def test_start_fills_the_cache_from_a_list(env: Any) -> None:
    _, cluster = env
    for name in ("a", "b", "c"):
        await cluster.create("pods", pod(name), namespace=NS)
    async with Informer(cluster, "pods", namespace=NS) as informer:
        assert informer.has_synced
        listing = await cluster.list("pods", namespace=NS)
        assert snapshot(informer.items()) == snapshot(listing["items"])
        cached = informer.get(NS, "a")
        assert cached is not None and cached["kind"] == "Pod" and cached["apiVersion"] == "v1"
        assert informer.get(NS, "missing") is None


async def test_cached_objects_and_events_come_without_managed_fields(env: Any) -> None:
    """The API server's ``managedFields`` (most of a pod's objects in memory, read by nothing of the
    gateway) are left out of the cache, listed or watched, and of the events; the rest is kept."""
    _, cluster = env
    await cluster.create("pods", pod("listed", {"app": "x"}), namespace=NS)
    assert (await cluster.get("pods", "listed", namespace=NS))["metadata"]["managedFields"]
    async with Informer(cluster, "pods", namespace=NS) as informer:
        async with informer.subscribe() as changes:
            await cluster.create("pods", pod("watched", {"app": "y"}), namespace=NS)
            event = await asyncio.wait_for(changes.__anext__(), TIMEOUT)
        assert event.object is informer.get(NS, "watched")
        for name, app in (("listed", "x"), ("watched", "y")):
            cached = informer.get(NS, name)
            served = await cluster.get("pods", name, namespace=NS)
            assert cached is not None and "managedFields" not in cached["metadata"]
            assert cached["metadata"]["labels"] == {"app": app}
            assert cached["spec"] == served["spec"]
            assert {k: v for k, v in served["metadata"].items() if k != "managedFields"} == cached["metadata"]
            assert served["metadata"]["managedFields"], "the server's own object is left as it was"


class PageRecorder(CountingCluster):
    """Counts calls and keeps each list's ``limit`` and ``continue_token``; ``expire`` continuations refused."""

    def __init__(self, inner: Any, *, expire: int = 0) -> None:
        super().__init__(inner)
        self.lists: list[tuple[int | None, str | None]] = []
        self._expire = expire

    async def list(self, resource: str, **options: Any) -> Any:
        self.lists.append((options.get("limit"), options.get("continue_token")))
        if options.get("continue_token") and self._expire:
            self._expire -= 1
            raise Gone("The provided continue parameter is too old to display a consistent list result.")
        return await self.inner.list(resource, **options)


async def test_the_first_list_comes_in_pages(env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, cluster = env
    monkeypatch.setattr(informer_module, "LIST_PAGE", 2)
    for name in ("a", "b", "c", "d", "e"):
        await cluster.create("pods", pod(name), namespace=NS)
    recorder = PageRecorder(cluster)
    async with Informer(recorder, "pods", namespace=NS) as informer:
        listing = await cluster.list("pods", namespace=NS)
        assert snapshot(informer.items()) == snapshot(listing["items"])
        assert [limit for limit, _ in recorder.lists] == [2, 2, 2]
        assert recorder.lists[0][1] is None and all(token for _, token in recorder.lists[1:])
        await cluster.create("pods", pod("f"), namespace=NS)  # watched from the first page's version
        await informer.wait_for(lambda obj: obj is not None, namespace=NS, name="f", timeout=TIMEOUT)


async def test_an_expired_continuation_lists_everything_at_once(env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, cluster = env
    monkeypatch.setattr(informer_module, "LIST_PAGE", 2)
    for name in ("a", "b", "c"):
        await cluster.create("pods", pod(name), namespace=NS)
    recorder = PageRecorder(cluster, expire=1)
    async with Informer(recorder, "pods", namespace=NS) as informer:
        listing = await cluster.list("pods", namespace=NS)
        assert snapshot(informer.items()) == snapshot(listing["items"])
        assert [limit for limit, _ in recorder.lists] == [2, 2, None]


# ------------------------------------------------------------------ the cache follows random writes

write = st.tuples(
    st.sampled_from(["create", "relabel", "delete", "drop-watches"]),
    st.sampled_from(["p0", "p1", "p2", "p3"]),
    st.sampled_from(["kernel", "other"]),
)


async def apply_writes(store: Store, cluster: MemoryCluster, writes: list[tuple[str, str, str]]) -> None:
    """Apply the writes that make sense in the current state (create the absent, change the present),
    and end the open watches where asked (with a small watch window, a renewal may then be Gone)."""
    existing = {o["metadata"]["name"]: o for o in (await cluster.list("pods", namespace=NS))["items"]}
    for op, name, app in writes:
        if op == "create" and name not in existing:
            existing[name] = await cluster.create("pods", pod(name, {"app": app}), namespace=NS)
        elif op == "relabel" and name in existing:
            patch = {"metadata": {"labels": {"app": app}}}
            existing[name] = await cluster.patch("pods", name, patch, namespace=NS)
        elif op == "delete" and name in existing:
            await cluster.delete("pods", name, namespace=NS, grace_period_seconds=0)
            del existing[name]  # grace 0: an unscheduled pod goes at once
        elif op == "drop-watches":
            store.faults.drop_watches("pods")


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=st.lists(write, max_size=8), after=st.lists(write, min_size=1, max_size=20))
def test_cache_matches_the_list_after_random_writes(before: list[Any], after: list[Any]) -> None:
    async def scenario() -> None:
        store, cluster = await open_cluster(watch_window=4)
        await apply_writes(store, cluster, before)
        selected = Informer(cluster, "pods", namespace=NS, label_selector="app=kernel")
        everything = Informer(cluster, "pods", namespace=NS)
        async with selected, everything:
            await apply_writes(store, cluster, after)
            # Watch events arrive in order: once a last marker write shows, all earlier ones have.
            await cluster.create("pods", pod("marker", {"app": "kernel"}), namespace=NS)
            for informer in (selected, everything):
                await informer.wait_for(lambda o: o is not None, namespace=NS, name="marker", timeout=TIMEOUT)
            for informer, selector in ((everything, None), (selected, "app=kernel")):
                listing = await cluster.list("pods", namespace=NS, label_selector=selector)
                assert snapshot(informer.items()) == snapshot(listing["items"])
        await cluster.close()

    asyncio.run(scenario())


# ------------------------------------------------------------------ watch ends, expiry, errors


async def test_a_dropped_watch_is_renewed_from_the_last_version_without_a_relist(env: Any) -> None:
    store, inner = env
    cluster = CountingCluster(inner)
    async with Informer(cluster, "pods", namespace=NS) as informer:
        await cluster.watch_opened.wait()
        cluster.watch_opened.clear()
        await inner.create("pods", pod("before"), namespace=NS)
        await informer.wait_for(lambda o: o is not None, namespace=NS, name="before", timeout=TIMEOUT)
        assert store.faults.drop_watches("pods") == 1
        await asyncio.wait_for(cluster.watch_opened.wait(), TIMEOUT)
        await inner.create("pods", pod("after"), namespace=NS)
        await informer.wait_for(lambda o: o is not None, namespace=NS, name="after", timeout=TIMEOUT)
        assert cluster.count("list") == 1
        assert cluster.count("watch") == 2


async def test_an_expired_version_relists_and_reports_what_changed_meanwhile() -> None:
    store, inner = await open_cluster(watch_window=3)
    cluster = CountingCluster(inner)
    for name in ("kept", "changed", "removed"):
        await inner.create("pods", pod(name), namespace=NS)
    async with Informer(cluster, "pods", namespace=NS) as informer:
        await cluster.watch_opened.wait()
        async with informer.subscribe() as changes:
            cluster.hold_watches()
            store.faults.drop_watches("pods")
            # The informer now waits to watch from its last version; meanwhile more
            # changes happen than the server retains.
            await inner.patch("pods", "changed", {"metadata": {"labels": {"v": "2"}}}, namespace=NS)
            await inner.delete("pods", "removed", namespace=NS, grace_period_seconds=0)
            for n in range(5):
                await inner.create("pods", pod(f"new-{n}"), namespace=NS)
            cluster.release()
            seen: dict[str, str] = {}
            while len(seen) < 7:
                event = await asyncio.wait_for(changes.__anext__(), TIMEOUT)
                seen[event.object["metadata"]["name"]] = event.type
        assert seen == {"changed": "MODIFIED", "removed": "DELETED", **{f"new-{n}": "ADDED" for n in range(5)}}
        assert cluster.count("list") == 2
        listing = await inner.list("pods", namespace=NS)
        assert snapshot(informer.items()) == snapshot(listing["items"])
    await inner.close()


async def test_api_errors_are_retried_with_backoff(env: Any) -> None:
    store, inner = env
    cluster = CountingCluster(inner)
    async with Informer(cluster, "pods", namespace=NS, backoff=Backoff(base=0.01, cap=0.05)) as informer:
        await cluster.watch_opened.wait()
        store.faults.inject("watch", "pods", error=ServiceUnavailable("etcd is down"), times=2)
        store.faults.drop_watches("pods")
        await inner.create("pods", pod("later"), namespace=NS)
        await informer.wait_for(lambda o: o is not None, namespace=NS, name="later", timeout=TIMEOUT)
        assert cluster.count("watch") == 4  # the first, two refused, the one that saw "later"
        assert cluster.count("list") == 1


async def test_a_gone_watch_with_nothing_missed_still_converges(env: Any) -> None:
    store, inner = env
    cluster = CountingCluster(inner)
    async with Informer(cluster, "pods", namespace=NS) as informer:
        await cluster.watch_opened.wait()
        store.faults.inject("watch", "pods", error=Gone("too old resource version"), times=1)
        store.faults.drop_watches("pods")
        await inner.create("pods", pod("x"), namespace=NS)
        await informer.wait_for(lambda o: o is not None, namespace=NS, name="x", timeout=TIMEOUT)
        assert cluster.count("list") == 2


def test_backoff_grows_exponentially_within_its_bounds_and_resets() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(7))
    for ceiling in (1, 2, 4, 8, 8, 8):
        delay = backoff.fail()
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.fail() <= 1.0


# ------------------------------------------------------------------ waiting


async def test_wait_for_resolves_on_the_event_that_satisfies_it(env: Any) -> None:
    _, cluster = env
    await cluster.create("pods", pod("k1"), namespace=NS)
    await cluster.create("pods", pod("k2"), namespace=NS)
    async with Informer(cluster, "pods", namespace=NS) as informer:
        running = asyncio.create_task(
            informer.wait_for(lambda p: phase(p) == "Running", namespace=NS, name="k1", timeout=TIMEOUT)
        )
        await cluster.patch("pods", "k2", {"status": {"phase": "Running"}}, namespace=NS, subresource="status")
        await informer.wait_for(lambda p: phase(p) == "Running", namespace=NS, name="k2", timeout=TIMEOUT)
        assert not running.done()  # another pod's change does not resolve it
        await cluster.patch("pods", "k1", {"status": {"phase": "Running"}}, namespace=NS, subresource="status")
        got = await running
        assert got is not None and got["metadata"]["name"] == "k1" and phase(got) == "Running"


async def test_wait_for_sees_the_current_state_at_once(env: Any) -> None:
    _, cluster = env
    await cluster.create("pods", pod("here", {"app": "kernel"}), namespace=NS)
    async with Informer(cluster, "pods", namespace=NS) as informer:
        got = await informer.wait_for(lambda p: p is not None, namespace=NS, name="here", timeout=0)
        assert got is not None and got["metadata"]["name"] == "here"
        any_kernel = await informer.wait_for(lambda p: p["metadata"]["labels"].get("app") == "kernel", timeout=0)
        assert any_kernel is not None and any_kernel["metadata"]["name"] == "here"


async def test_wait_for_a_deletion_returns_none(env: Any) -> None:
    _, cluster = env
    await cluster.create("pods", pod("doomed"), namespace=NS)
    async with Informer(cluster, "pods", namespace=NS) as informer:
        gone = asyncio.create_task(informer.wait_for(lambda p: p is None, namespace=NS, name="doomed", timeout=TIMEOUT))
        await cluster.delete("pods", "doomed", namespace=NS, grace_period_seconds=0)
        assert await gone is None
        assert informer.get(NS, "doomed") is None


async def test_wait_for_times_out_when_nothing_matches(env: Any) -> None:
    _, cluster = env
    async with Informer(cluster, "pods", namespace=NS) as informer:
        with pytest.raises(asyncio.TimeoutError):
            await informer.wait_for(lambda p: p is not None, namespace=NS, name="never", timeout=0.05)


async def test_a_predicate_error_reaches_its_waiter_only(env: Any) -> None:
    _, cluster = env
    async with Informer(cluster, "pods", namespace=NS) as informer:
        broken = asyncio.create_task(
            informer.wait_for(lambda p: p is not None and p["no"] == 1, namespace=NS, name="k", timeout=TIMEOUT)
        )
        await cluster.create("pods", pod("k"), namespace=NS)
        with pytest.raises(KeyError):
            await broken
        await cluster.create("pods", pod("k2"), namespace=NS)
        assert await informer.wait_for(lambda p: p is not None, namespace=NS, name="k2", timeout=TIMEOUT)


async def test_stop_ends_waiters_subscriptions_and_its_task(env: Any) -> None:
    _, cluster = env
    informer = Informer(cluster, "pods", namespace=NS)
    await informer.start()
    waiter = asyncio.create_task(informer.wait_for(lambda p: False, namespace=NS, name="x", timeout=TIMEOUT))
    sub = informer.subscribe()
    received: list[WatchEvent] = []

    async def read() -> None:
        async for event in sub:
            received.append(event)

    reader = asyncio.create_task(read())
    await asyncio.sleep(0)  # let both start waiting
    await informer.stop()
    with pytest.raises(InformerStopped):
        await waiter
    await asyncio.wait_for(reader, TIMEOUT)
    assert received == []
    left = unfinished_tasks()
    assert not left, f"stop() returned with tasks running:\n{describe(left)}"


async def test_subscribers_see_every_change_in_order(env: Any) -> None:
    _, cluster = env
    await cluster.create("pods", pod("old"), namespace=NS)
    async with Informer(cluster, "pods", namespace=NS) as informer:
        async with informer.subscribe(replay=True) as changes:
            await cluster.create("pods", pod("p"), namespace=NS)
            await cluster.patch("pods", "p", {"metadata": {"labels": {"x": "1"}}}, namespace=NS)
            await cluster.delete("pods", "p", namespace=NS, grace_period_seconds=0)
            got = [await asyncio.wait_for(changes.__anext__(), TIMEOUT) for _ in range(5)]
        # A deletion is a write (the deletion mark) before the removal, as on a real API server.
        assert [(e.type, e.object["metadata"]["name"]) for e in got] == [
            ("ADDED", "old"), ("ADDED", "p"), ("MODIFIED", "p"), ("MODIFIED", "p"), ("DELETED", "p"),
        ]


# ------------------------------------------------------------------ idle cost


async def test_an_idle_informer_makes_no_calls_but_its_watch(env: Any) -> None:
    _, inner = env
    cluster = CountingCluster(inner)
    for n in range(20):
        await inner.create("pods", pod(f"kernel-{n}"), namespace=NS)
    async with Informer(cluster, "pods", namespace=NS, resync_timeout=1) as informer:
        # Many kernels asking about their pods, and pods changing, cost nothing...
        waiters = [
            asyncio.create_task(
                informer.wait_for(lambda p: phase(p) == "Running", namespace=NS, name=f"kernel-{n}", timeout=TIMEOUT)
            )
            for n in range(20)
        ]
        for n in range(20):
            assert informer.get(NS, f"kernel-{n}") is not None
            await inner.patch("pods", f"kernel-{n}", {"status": {"phase": "Running"}}, namespace=NS, subresource="status")
        await asyncio.gather(*waiters)
        # ...and when the server ends the watch at its timeout, the informer renews it and nothing else.
        cluster.watch_opened.clear()
        await asyncio.wait_for(cluster.watch_opened.wait(), TIMEOUT)
        assert cluster.calls == {("list", "pods"): 1, ("watch", "pods"): 2}
