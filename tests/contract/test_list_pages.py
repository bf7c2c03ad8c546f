"""Lists in pages (``limit`` and ``continue``), as the gateway's informers list thousands of kernel pods."""

from __future__ import annotations

import pytest

from gateway.cluster.interface import BadRequest, Cluster, Gone

from .conftest import Target
from .helpers import configmap

PAGED = "paged=yes"


async def _five(cluster: Cluster, ns: str) -> list[str]:
    names = [f"page-{i}" for i in range(5)]
    for name in names:
        await cluster.create("configmaps", configmap(name, labels={"paged": "yes"}), namespace=ns)
    return names


async def test_a_limited_list_comes_in_pages_at_the_first_pages_version(cluster: Cluster, ns: str) -> None:
    names = await _five(cluster, ns)
    first = await cluster.list("configmaps", namespace=ns, label_selector=PAGED, limit=2)
    assert [i["metadata"]["name"] for i in first["items"]] == names[:2]
    version = first["metadata"]["resourceVersion"]
    seen = [i["metadata"]["name"] for i in first["items"]]
    token = first["metadata"].get("continue")
    pages = 1
    while token:
        page = await cluster.list("configmaps", namespace=ns, label_selector=PAGED, limit=2, continue_token=token)
        assert len(page["items"]) <= 2
        assert page["metadata"]["resourceVersion"] == version
        seen += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
        pages += 1
    assert seen == names
    assert pages >= 3


async def test_a_list_that_fits_its_limit_has_no_continuation(cluster: Cluster, ns: str) -> None:
    names = await _five(cluster, ns)
    listed = await cluster.list("configmaps", namespace=ns, label_selector=PAGED, limit=10)
    assert [i["metadata"]["name"] for i in listed["items"]] == names
    assert not listed["metadata"].get("continue")


async def test_a_continuation_that_does_not_read_is_a_bad_request(cluster: Cluster, ns: str) -> None:
    with pytest.raises(BadRequest):
        await cluster.list("configmaps", namespace=ns, limit=2, continue_token="not-a-continue-token")


async def test_a_continuation_older_than_the_server_keeps_is_gone(target: Target, cluster: Cluster, ns: str) -> None:
    if target.watch_window is None:
        pytest.skip("the target's history is unknown: a real server forgets versions at etcd's compaction")
    await _five(cluster, ns)
    first = await cluster.list("configmaps", namespace=ns, label_selector=PAGED, limit=2)
    for i in range(target.watch_window + 1):
        await cluster.patch("configmaps", "page-0", {"data": {"i": str(i)}}, namespace=ns)
    with pytest.raises(Gone) as err:
        await cluster.list("configmaps", namespace=ns, label_selector=PAGED, limit=2,
                           continue_token=first["metadata"]["continue"])
    assert err.value.status == 410 and err.value.reason == "Expired"
