"""Watches: ordering, selectors, versions too old, bookmarks, and ending cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.cluster.interface import BadRequest, Cluster, Gone, ServerError, WatchEvent

from .conftest import Target
from .helpers import configmap, next_event, next_event_of


async def test_watch_from_a_list_version_delivers_later_writes_in_order(cluster: Cluster, ns: str) -> None:
    await cluster.create("configmaps", configmap("before"), namespace=ns)
    listed = await cluster.list("configmaps", namespace=ns)
    stream = cluster.watch("configmaps", namespace=ns, resource_version=listed["metadata"]["resourceVersion"])
    try:
        await cluster.create("configmaps", configmap("w"), namespace=ns)
        await cluster.patch("configmaps", "w", {"data": {"k": "v"}}, namespace=ns)
        await cluster.delete("configmaps", "w", namespace=ns)
        events = [await next_event_of(stream, {"w"}) for _ in range(3)]
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [("ADDED", "w"), ("MODIFIED", "w"),
                                                                         ("DELETED", "w")]
    versions = [int(e.resource_version) for e in events]
    assert versions == sorted(versions) and len(set(versions)) == 3
    assert events[1].object["data"] == {"k": "v"}
    assert events[0].object["kind"] == "ConfigMap"


async def test_watch_without_version_starts_with_what_exists(cluster: Cluster, ns: str) -> None:
    await cluster.create("configmaps", configmap("a"), namespace=ns)
    await cluster.create("configmaps", configmap("b"), namespace=ns)
    stream = cluster.watch("configmaps", namespace=ns)
    try:
        first = [await next_event_of(stream, {"a", "b", "c"}) for _ in range(2)]
        assert sorted((e.type, e.object["metadata"]["name"]) for e in first) == [("ADDED", "a"), ("ADDED", "b")]
        await cluster.create("configmaps", configmap("c"), namespace=ns)
        event = await next_event_of(stream, {"a", "b", "c"})
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert (event.type, event.object["metadata"]["name"]) == ("ADDED", "c")


async def test_selector_watch_sees_objects_enter_and_leave(cluster: Cluster, ns: str) -> None:
    listed = await cluster.list("configmaps", namespace=ns)
    stream = cluster.watch("configmaps", namespace=ns, label_selector="app=kernel",
                           resource_version=listed["metadata"]["resourceVersion"])
    try:
        await cluster.create("configmaps", configmap("other", labels={"app": "web"}), namespace=ns)
        await cluster.create("configmaps", configmap("k", labels={"app": "web"}), namespace=ns)
        await cluster.patch("configmaps", "k", {"metadata": {"labels": {"app": "kernel"}}}, namespace=ns)
        await cluster.patch("configmaps", "k", {"data": {"x": "1"}}, namespace=ns)
        await cluster.patch("configmaps", "k", {"metadata": {"labels": {"app": "web"}}}, namespace=ns)
        events = [await next_event(stream) for _ in range(3)]
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert [e.type for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert all(e.object["metadata"]["name"] == "k" for e in events)
    # The DELETED event carries the last state that matched.
    assert events[2].object["metadata"]["labels"] == {"app": "kernel"}


async def test_watch_from_a_version_older_than_the_window_is_gone(target: Target, cluster: Cluster, ns: str) -> None:
    if target.watch_window is None:
        pytest.skip("the target's watch window is unknown")
    first = await cluster.create("configmaps", configmap("churn"), namespace=ns)
    old = first["metadata"]["resourceVersion"]
    for i in range(target.watch_window + 1):
        await cluster.patch("configmaps", "churn", {"data": {"i": str(i)}}, namespace=ns)
    stream = cluster.watch("configmaps", namespace=ns, resource_version=old)
    with pytest.raises(Gone) as err:
        await next_event(stream)
    assert err.value.status == 410 and err.value.reason == "Expired"
    assert err.value.message.startswith(f"too old resource version: {old} (")


async def test_watch_with_a_bad_selector_is_a_bad_request(cluster: Cluster, ns: str) -> None:
    with pytest.raises(BadRequest):
        await next_event(cluster.watch("configmaps", namespace=ns, label_selector="a in (b"))


async def test_a_quiet_watch_times_out_without_a_bookmark(cluster: Cluster, ns: str) -> None:
    # Secrets: nothing in a cluster writes them on its own, so the resource stays quiet.
    listed = await cluster.list("secrets", namespace=ns)
    stream = cluster.watch("secrets", namespace=ns, resource_version=listed["metadata"]["resourceVersion"],
                           timeout_seconds=3, allow_bookmarks=True)
    assert [e async for e in stream] == []


async def test_a_watch_gets_a_bookmark_before_its_timeout_once_the_resource_moved(cluster: Cluster, ns: str) -> None:
    # The watch cache sends a bookmark about 2 s before the deadline (on one-second buckets: sometimes a
    # second one just after) once the resource moved past the version the watch started from, which
    # replayed events move too: the write it must not see comes after the watch is surely open.
    listed = await cluster.list("secrets", namespace=ns)
    stream = cluster.watch("secrets", namespace=ns, resource_version=listed["metadata"]["resourceVersion"],
                           label_selector="app=marker", timeout_seconds=4, allow_bookmarks=True)
    marker = {"metadata": {"name": "marker", "labels": {"app": "marker"}}}
    first, _ = await asyncio.gather(next_event(stream), cluster.create("secrets", marker, namespace=ns))
    assert (first.type, first.object["metadata"]["name"]) == ("ADDED", "marker")
    unseen = await cluster.create("secrets", {"metadata": {"name": "unseen"}}, namespace=ns)
    events = [e async for e in stream]
    assert [e.type for e in events] in (["BOOKMARK"], ["BOOKMARK", "BOOKMARK"])
    assert all(int(e.resource_version) >= int(unseen["metadata"]["resourceVersion"]) for e in events)


async def test_closed_watches_do_not_linger(target: Target, cluster: Cluster, ns: str) -> None:
    if target.store is None or not target.in_process:
        pytest.skip("needs a store whose watches close with the call")
    stream = cluster.watch("configmaps", namespace=ns)
    await cluster.create("configmaps", configmap("x"), namespace=ns)
    await next_event(stream)
    assert target.store.open_watches("configmaps") == 1
    await stream.aclose()  # type: ignore[attr-defined]
    assert target.store.open_watches("configmaps") == 0


async def test_a_dropped_watch_ends_the_stream(target: Target, cluster: Cluster, ns: str) -> None:
    if target.faults is None:
        pytest.skip("this target cannot drop watches")
    stream = cluster.watch("configmaps", namespace=ns, label_selector="app=x")
    await cluster.create("configmaps", configmap("x", labels={"app": "x"}), namespace=ns)
    assert (await next_event(stream)).type == "ADDED"
    assert target.faults.drop_watches("configmaps") >= 1
    with pytest.raises(StopAsyncIteration):
        await next_event(stream)


async def test_a_watch_from_a_version_not_reached_yet_waits_for_it_and_ends_empty(cluster: Cluster, ns: str) -> None:
    # The server opens the watch all the same (no error): it delivers only writes after that version, so a
    # version far ahead sees nothing before its timeout.
    listed = await cluster.list("secrets", namespace=ns)
    ahead = str(int(listed["metadata"]["resourceVersion"]) + 10**9)
    stream = cluster.watch("secrets", namespace=ns, resource_version=ahead, timeout_seconds=2)
    events, _ = await asyncio.gather(_all(stream), cluster.create("secrets", {"metadata": {"name": "s"}}, namespace=ns))
    assert events == []


async def test_a_watch_from_a_version_ahead_delivers_exactly_the_writes_after_it(cluster: Cluster, ns: str) -> None:
    first = await cluster.create("secrets", {"metadata": {"name": "s0"}}, namespace=ns)
    ahead = int(first["metadata"]["resourceVersion"]) + 2
    stream = cluster.watch("secrets", namespace=ns, resource_version=str(ahead), timeout_seconds=3)

    async def write() -> list[tuple[str, int]]:
        written = []
        for name in ("s1", "s2", "s3", "s4"):
            made = await cluster.create("secrets", {"metadata": {"name": name}}, namespace=ns)
            written.append((name, int(made["metadata"]["resourceVersion"])))
        return written

    events, written = await asyncio.gather(_all(stream), write())
    # Other writers of a real cluster move its versions too: which writes come after ``ahead`` is read off theirs.
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [("ADDED", n) for n, rv in written if rv > ahead]
    assert events  # s4 is past it on every cluster


async def test_a_malformed_version_on_a_watch_is_a_server_error_with_the_parsers_text(cluster: Cluster,
                                                                                      ns: str) -> None:
    for version, why in (("abc", "invalid syntax"), ("-1", "invalid syntax"),
                         ("99999999999999999999999", "value out of range")):
        with pytest.raises(ServerError) as err:
            await next_event(cluster.watch("secrets", namespace=ns, resource_version=version))
        assert err.value.status == 500
        assert err.value.message == (f'resourceVersion: Invalid value: "{version}": strconv.ParseUint: parsing '
                                     f'"{version}": {why}')
    # The selectors are read first.
    with pytest.raises(BadRequest):
        await next_event(cluster.watch("secrets", namespace=ns, label_selector="a b", resource_version="abc"))


async def _all(stream: AsyncIterator[WatchEvent]) -> list[WatchEvent]:
    """Every event of a watch until it ends (its timeout), bounded so a watch that never ends fails the test."""
    async def collect() -> list[WatchEvent]:
        return [e async for e in stream]
    return await asyncio.wait_for(collect(), 15)
