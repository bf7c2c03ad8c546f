"""A deletion reaches the informer's cache and subscribers through its watch alone.

The informer follows the cluster with one list, then one watch; a DELETED event is applied like
any other, without an error and without listing again.  Runs against the in-memory simulated
cluster, counted by ``tests.counting.CountingCluster``.
"""

from __future__ import annotations

import asyncio

from gateway.cluster.informer import Informer
from tests.counting import CountingCluster
from tests.test_informer import NS, TIMEOUT, open_cluster


async def test_a_deletion_is_applied_from_the_watch_without_a_relist() -> None:
    _, inner = await open_cluster()
    cluster = CountingCluster(inner)
    try:
        await inner.create("configmaps", {"metadata": {"name": "doomed"}}, namespace=NS)
        async with Informer(cluster, "configmaps", namespace=NS) as informer:
            await asyncio.wait_for(cluster.watch_opened.wait(), TIMEOUT)
            assert informer.get(NS, "doomed") is not None
            async with informer.subscribe() as changes:
                await inner.delete("configmaps", "doomed", namespace=NS)
                event = await asyncio.wait_for(changes.__anext__(), TIMEOUT)
            assert (event.type, event.object["metadata"]["name"]) == ("DELETED", "doomed")
            assert informer.get(NS, "doomed") is None
            assert cluster.calls == {("list", "configmaps"): 1, ("watch", "configmaps"): 1}
    finally:
        await inner.close()
