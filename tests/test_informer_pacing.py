"""How the informer paces itself when its watch keeps ending: at once the first time, then backing off.

A watch that ends early with nothing in it is renewed at once the first time and after growing
pauses when it keeps doing so; a healthy stream resets that.  A watch answered Gone right after a
fresh list pauses before listing again.  Bookmarks keep the informer's version current while its
objects are quiet, so a renewed watch needs no new list.  The informer below records the pauses
it would take (and takes none), so the tests see the pacing without waiting for it; the cluster is
the in-memory simulated one, counted by ``tests.counting.CountingCluster``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from gateway.aio import Backoff
from gateway.cluster.informer import Informer
from gateway.cluster.interface import Gone, WatchEvent
from tests.counting import CountingCluster
from tests.test_informer import NS, TIMEOUT, open_cluster


class PacedInformer(Informer):
    """An informer whose pauses before retrying are recorded, and end at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pauses: list[float] = []
        self.paused = asyncio.Event()

    async def _sleep(self, delay: float) -> None:
        self.pauses.append(delay)
        self.paused.set()
        await asyncio.sleep(0)


async def _renewed(cluster: CountingCluster) -> None:
    await asyncio.wait_for(cluster.watch_opened.wait(), TIMEOUT)
    cluster.watch_opened.clear()


async def test_a_watch_that_keeps_ending_empty_is_renewed_at_once_then_after_growing_pauses() -> None:
    store, inner = await open_cluster()
    cluster = CountingCluster(inner)
    try:
        async with PacedInformer(cluster, "configmaps", namespace=NS, backoff=Backoff(base=1.0, cap=8.0)) as informer:
            await _renewed(cluster)
            assert store.faults.drop_watches("configmaps") == 1
            await _renewed(cluster)
            assert informer.pauses == [], "the first early end was not renewed at once"
            assert store.faults.drop_watches("configmaps") == 1
            await _renewed(cluster)
            assert len(informer.pauses) == 1 and 1.0 <= informer.pauses[0] <= 2.0

            # A stream with events in it is healthy: the next early end is renewed at once again.
            await inner.create("configmaps", {"metadata": {"name": "news"}}, namespace=NS)
            await informer.wait_for(lambda o: o is not None, namespace=NS, name="news", timeout=TIMEOUT)
            assert store.faults.drop_watches("configmaps") == 1
            await _renewed(cluster)
            assert store.faults.drop_watches("configmaps") == 1
            await _renewed(cluster)
            assert len(informer.pauses) == 1
            assert cluster.count("list") == 1
    finally:
        await inner.close()


async def test_gone_right_after_a_list_pauses_before_listing_again() -> None:
    store, inner = await open_cluster()
    cluster = CountingCluster(inner)
    try:
        async with PacedInformer(cluster, "configmaps", namespace=NS, backoff=Backoff(base=1.0, cap=8.0)) as informer:
            await _renewed(cluster)
            store.faults.inject("watch", "configmaps", error=Gone("too old resource version"), times=2)
            assert store.faults.drop_watches("configmaps") == 1
            await asyncio.wait_for(informer.paused.wait(), TIMEOUT)
            await inner.create("configmaps", {"metadata": {"name": "x"}}, namespace=NS)
            await informer.wait_for(lambda o: o is not None, namespace=NS, name="x", timeout=TIMEOUT)
            # Gone, a list at once; Gone again from the version just listed: a pause, then a list.
            assert cluster.count("list") == 3
            assert len(informer.pauses) == 1 and informer.pauses[0] > 0
            assert store.faults.drop_watches("configmaps") == 1
            await _renewed(cluster)
            assert cluster.count("list") == 3, "a healthy watch's renewal listed again"
    finally:
        await inner.close()


class SeenBookmarks:
    """A cluster connection that sets :attr:`bookmarked` when a watch delivers a bookmark."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.bookmarked = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def watch(self, resource: str, **options: Any) -> AsyncIterator[WatchEvent]:
        return self._watch(resource, options)

    async def _watch(self, resource: str, options: dict[str, Any]) -> AsyncIterator[WatchEvent]:
        stream = self.inner.watch(resource, **options)
        try:
            async for event in stream:
                if event.type == "BOOKMARK":
                    self.bookmarked.set()
                yield event
        finally:
            await stream.aclose()


async def test_bookmarks_keep_a_quiet_informer_current_so_a_renewed_watch_needs_no_list() -> None:
    store, inner = await open_cluster(watch_window=3, bookmark_interval=0.2)
    cluster = CountingCluster(inner)
    seen = SeenBookmarks(cluster)
    try:
        async with Informer(seen, "configmaps", namespace=NS, label_selector="app=mine") as informer:  # type: ignore[arg-type]
            await _renewed(cluster)
            for n in range(10):  # the resource moves on, far past what the server can replay, none of it ours
                await inner.create("configmaps", {"metadata": {"name": f"other-{n}"}}, namespace=NS)
            await asyncio.wait_for(seen.bookmarked.wait(), TIMEOUT)
            assert store.faults.drop_watches("configmaps") == 1
            await _renewed(cluster)
            await inner.create("configmaps", {"metadata": {"name": "ours", "labels": {"app": "mine"}}}, namespace=NS)
            await informer.wait_for(lambda o: o is not None, namespace=NS, name="ours", timeout=TIMEOUT)
            assert cluster.count("list") == 1
    finally:
        await inner.close()
