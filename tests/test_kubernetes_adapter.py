"""The real adapter against the simulated API server, over HTTPS, with the
credentials the ``kubernetes`` client reads: wire objects intact, every failure
one of our errors, watches that stream, expire and close, connections that
never outlive the adapter, and an event loop that keeps running while
requests wait.

The simulated server runs on the test's own event loop, so an adapter call
that blocked the loop would never be answered: every passing test here is
also evidence that the adapter does not block.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from kubernetes.client import ApiClient, Configuration

from fakes.memory import MemoryCluster
from fakes.serve import SimulatedCluster
from fakes.state.store import Store
from gateway.cluster import interface as i
from gateway.cluster.informer import Informer
from gateway.cluster.kubernetes import KubernetesCluster

NS = "kernels"
WINDOW = 5
TIMEOUT = 10.0


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedCluster]:
    async with SimulatedCluster(node_agent=False, store=Store(watch_window=WINDOW, bookmark_interval=0.2)) as sim:
        await MemoryCluster(sim.store).create("namespaces", {"metadata": {"name": NS}})
        yield sim


@pytest.fixture
async def k8s(sim: SimulatedCluster) -> AsyncIterator[KubernetesCluster]:
    cluster = KubernetesCluster.from_kubeconfig(str(sim.kubeconfig_path))
    yield cluster
    await cluster.close()


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "annotations": {"kernelgate/x": "y"}},
        "spec": {"containers": [{"name": "kernel", "image": "busybox", "command": ["sh", "-c", "true"]}]},
    }


async def as_service_account(sim: SimulatedCluster, k8s: KubernetesCluster, name: str) -> KubernetesCluster:
    """A second adapter, authenticated with a token the TokenRequest API issued to ``NS/name``."""
    await k8s.create("serviceaccounts", {"metadata": {"name": name}}, namespace=NS)
    token = await k8s.create_token(name, NS, expiration_seconds=600)
    path = await asyncio.to_thread(sim.write_kubeconfig, None, **{name: token})
    return KubernetesCluster.from_kubeconfig(str(path), context=f"kernelgate-{name}")


# ------------------------------------------------------------------ objects


async def test_objects_come_back_exactly_as_the_server_stores_them(sim: SimulatedCluster, k8s: KubernetesCluster) -> None:
    created = await k8s.create("pods", pod("p1", app="kernel"), namespace=NS)
    stored = await MemoryCluster(sim.store).get("pods", "p1", namespace=NS)
    assert created == stored
    assert await k8s.get("pods", "p1", namespace=NS) == stored
    listing = await k8s.list("pods", namespace=NS, label_selector="app=kernel")
    assert listing["kind"] == "PodList" and listing["metadata"]["resourceVersion"]
    assert [item["metadata"]["name"] for item in listing["items"]] == ["p1"]
    assert (await k8s.list("pods", namespace=NS, label_selector="app=other"))["items"] == []


async def test_patch_replace_and_delete_reach_the_server(k8s: KubernetesCluster) -> None:
    await k8s.create("configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}}, namespace=NS)
    merged = await k8s.patch("configmaps", "c", {"data": {"b": "2"}}, namespace=NS)
    assert merged["data"] == {"a": "1", "b": "2"}
    ops = [{"op": "remove", "path": "/data/a"}]
    patched = await k8s.patch("configmaps", "c", ops, namespace=NS, patch_type=i.PatchType.JSON)
    assert patched["data"] == {"b": "2"}
    patched["data"] = {"c": "3"}
    replaced = await k8s.replace("configmaps", "c", patched, namespace=NS)
    assert replaced["data"] == {"c": "3"}
    await k8s.delete("configmaps", "c", namespace=NS, propagation_policy=i.Propagation.FOREGROUND)
    with pytest.raises(i.NotFound):
        await k8s.get("configmaps", "c", namespace=NS)


async def test_graceful_pod_delete_sends_its_grace_period(k8s: KubernetesCluster) -> None:
    await k8s.create("pods", pod("p"), namespace=NS)
    await k8s.bind_pod("p", NS, "node-a")
    assert (await k8s.get("pods", "p", namespace=NS))["spec"]["nodeName"] == "node-a"
    deleting = await k8s.delete("pods", "p", namespace=NS, grace_period_seconds=30)
    assert deleting["metadata"]["deletionGracePeriodSeconds"] == 30
    await k8s.delete("pods", "p", namespace=NS, grace_period_seconds=0)
    with pytest.raises(i.NotFound):
        await k8s.get("pods", "p", namespace=NS)


async def test_tokens_and_access_reviews(sim: SimulatedCluster, k8s: KubernetesCluster) -> None:
    assert await k8s.can_i("delete", "namespaces")
    account = await as_service_account(sim, k8s, "reader")
    try:
        assert await account.can_i("create", "selfsubjectaccessreviews", group="authorization.k8s.io")
        assert not await account.can_i("list", "pods", namespace=NS)
        with pytest.raises(i.Forbidden) as caught:
            await account.list("pods", namespace=NS)
        assert "system:serviceaccount:kernels:reader" in caught.value.message
    finally:
        await account.close()


async def test_pod_logs_are_read_as_text() -> None:
    async with SimulatedCluster(node_agent=True) as sim:
        cluster = KubernetesCluster.from_kubeconfig(str(sim.kubeconfig_path))
        try:
            await cluster.create("namespaces", {"metadata": {"name": NS}})
            body = pod("talker")
            body["spec"]["restartPolicy"] = "Never"
            body["spec"]["containers"][0]["command"] = ["sh", "-c", "echo one; echo two; echo drei-✓"]
            await cluster.create("pods", body, namespace=NS)
            async with Informer(cluster, "pods", namespace=NS) as pods:
                done = await pods.wait_for(
                    lambda p: p is not None and p.get("status", {}).get("phase") in ("Succeeded", "Failed"),
                    namespace=NS, name="talker", timeout=TIMEOUT,
                )
            assert done is not None and done["status"]["phase"] == "Succeeded"
            assert await cluster.read_pod_log("talker", NS) == "one\ntwo\ndrei-✓\n"
            assert await cluster.read_pod_log("talker", NS, container="kernel", tail_lines=1) == "drei-✓\n"
        finally:
            await cluster.close()


# ------------------------------------------------------------------ errors

Setup = Callable[[SimulatedCluster, KubernetesCluster], Awaitable[Any]]


async def _not_found(sim: SimulatedCluster, k8s: KubernetesCluster) -> Any:
    return await k8s.get("pods", "missing", namespace=NS)


async def _already_exists(sim: SimulatedCluster, k8s: KubernetesCluster) -> Any:
    await k8s.create("configmaps", {"metadata": {"name": "twice"}}, namespace=NS)
    return await k8s.create("configmaps", {"metadata": {"name": "twice"}}, namespace=NS)


async def _conflict(sim: SimulatedCluster, k8s: KubernetesCluster) -> Any:
    first = await k8s.create("configmaps", {"metadata": {"name": "raced"}}, namespace=NS)
    await k8s.patch("configmaps", "raced", {"data": {"x": "1"}}, namespace=NS)
    return await k8s.replace("configmaps", "raced", first, namespace=NS)  # its resourceVersion is stale now


async def _invalid(sim: SimulatedCluster, k8s: KubernetesCluster) -> Any:
    return await k8s.create("pods", pod("Not_A_Name"), namespace=NS)


async def _bad_request(sim: SimulatedCluster, k8s: KubernetesCluster) -> Any:
    return await k8s.list("pods", namespace=NS, label_selector="app in (")


async def _forbidden(sim: SimulatedCluster, k8s: KubernetesCluster) -> Any:
    account = await as_service_account(sim, k8s, "nobody")
    try:
        return await account.get("secrets", "anything", namespace=NS)
    finally:
        await account.close()


async def _unauthorized(sim: SimulatedCluster, k8s: KubernetesCluster) -> Any:
    configuration = Configuration(host=sim.url, api_key={"BearerToken": "Bearer not-a-token"})
    configuration.ssl_ca_cert = str(sim.ca_path)
    stranger = KubernetesCluster(ApiClient(configuration))
    try:
        return await stranger.list("pods", namespace=NS)
    finally:
        await stranger.close()


async def _method_not_allowed(sim: SimulatedCluster, k8s: KubernetesCluster) -> Any:
    return await k8s.get("selfsubjectaccessreviews", "any")


async def _unavailable(sim: SimulatedCluster, k8s: KubernetesCluster) -> Any:
    sim.store.faults.inject("get", "pods", error=i.ServiceUnavailable("etcd is unreachable"), times=1)
    return await k8s.get("pods", "any", namespace=NS)


async def _too_many(sim: SimulatedCluster, k8s: KubernetesCluster) -> Any:
    sim.store.faults.inject("list", "pods", error=i.TooManyRequests("slow down", retry_after_seconds=3), times=1)
    return await k8s.list("pods", namespace=NS)


async def _gone(sim: SimulatedCluster, k8s: KubernetesCluster) -> Any:
    first = await k8s.create("configmaps", {"metadata": {"name": "v0"}}, namespace=NS)
    for n in range(WINDOW + 1):
        await k8s.create("configmaps", {"metadata": {"name": f"v{n + 1}"}}, namespace=NS)
    stream = k8s.watch("configmaps", namespace=NS, resource_version=first["metadata"]["resourceVersion"])
    try:
        return [event async for event in stream]
    finally:
        await stream.aclose()


async def _server_timeout(sim: SimulatedCluster, k8s: KubernetesCluster) -> Any:
    sim.store.faults.inject("get", "pods", error=i.Timeout("the server was unable to return a response in time"), times=1)
    return await k8s.get("pods", "any", namespace=NS)


ERRORS: dict[str, tuple[Setup, type[i.ClusterError]]] = {
    "not found": (_not_found, i.NotFound),
    "already exists": (_already_exists, i.AlreadyExists),
    "stale resourceVersion": (_conflict, i.Conflict),
    "invalid name": (_invalid, i.Invalid),
    "bad selector": (_bad_request, i.BadRequest),
    "forbidden": (_forbidden, i.Forbidden),
    "bad token": (_unauthorized, i.Unauthorized),
    "verb not served": (_method_not_allowed, i.MethodNotAllowed),
    "unavailable": (_unavailable, i.ServiceUnavailable),
    "too many requests": (_too_many, i.TooManyRequests),
    "expired watch": (_gone, i.Gone),
    "server timeout": (_server_timeout, i.Timeout),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
async def test_each_failure_is_our_error_with_the_servers_message(
    case: str, sim: SimulatedCluster, k8s: KubernetesCluster
) -> None:
    setup, expected = ERRORS[case]
    with pytest.raises(i.ClusterError) as caught:
        await setup(sim, k8s)
    assert type(caught.value) is expected
    assert caught.value.message and "{" not in caught.value.message


async def test_invalid_carries_the_field_causes(k8s: KubernetesCluster) -> None:
    with pytest.raises(i.Invalid) as caught:
        await _invalid(None, k8s)  # type: ignore[arg-type]
    assert any(cause.field == "metadata.name" for cause in caught.value.causes)


async def test_too_many_requests_says_when_to_retry(sim: SimulatedCluster, k8s: KubernetesCluster) -> None:
    with pytest.raises(i.TooManyRequests) as caught:
        await _too_many(sim, k8s)
    assert caught.value.retry_after_seconds == 3


async def test_a_client_side_read_timeout_is_a_timeout(sim: SimulatedCluster) -> None:
    impatient = KubernetesCluster.from_kubeconfig(str(sim.kubeconfig_path), request_timeout=(5.0, 0.2))
    try:
        sim.store.faults.inject("get", "pods", latency=1.0, times=1)
        with pytest.raises(i.Timeout):
            await impatient.get("pods", "any", namespace=NS)
    finally:
        await impatient.close()


async def test_an_unreachable_server_is_unavailable(sim: SimulatedCluster) -> None:
    configuration = Configuration(host="https://127.0.0.1:1")
    unreachable = KubernetesCluster(ApiClient(configuration))
    try:
        with pytest.raises(i.ServiceUnavailable):
            await unreachable.get("pods", "any", namespace=NS)
        with pytest.raises(i.ServiceUnavailable):
            async for _ in unreachable.watch("pods", namespace=NS):
                pass
    finally:
        await unreachable.close()


# ------------------------------------------------------------------ watch


async def test_watch_streams_changes_as_they_happen(k8s: KubernetesCluster) -> None:
    start = (await k8s.list("pods", namespace=NS))["metadata"]["resourceVersion"]
    async with k8s.watch("pods", namespace=NS, resource_version=start, timeout_seconds=30) as stream:
        for n in range(3):
            await k8s.create("pods", pod(f"w{n}"), namespace=NS)
            event = await asyncio.wait_for(stream.__anext__(), TIMEOUT)
            assert (event.type, event.object["metadata"]["name"]) == ("ADDED", f"w{n}")
        await k8s.delete("pods", "w0", namespace=NS, grace_period_seconds=0)
        # The registry marks the pod for deletion (a write), then removes it.
        marked = await asyncio.wait_for(stream.__anext__(), TIMEOUT)
        assert (marked.type, marked.object["metadata"]["deletionGracePeriodSeconds"]) == ("MODIFIED", 0)
        event = await asyncio.wait_for(stream.__anext__(), TIMEOUT)
        assert (event.type, event.object["metadata"]["name"]) == ("DELETED", "w0")


async def test_watch_without_a_version_starts_with_what_exists(k8s: KubernetesCluster) -> None:
    await k8s.create("pods", pod("there"), namespace=NS)
    async with k8s.watch("pods", namespace=NS, timeout_seconds=30) as stream:
        event = await asyncio.wait_for(stream.__anext__(), TIMEOUT)
    assert (event.type, event.object["metadata"]["name"]) == ("ADDED", "there")


async def test_watch_ends_at_its_timeout_with_a_bookmark(k8s: KubernetesCluster) -> None:
    start = (await k8s.list("pods", namespace=NS))["metadata"]["resourceVersion"]
    stream = k8s.watch("pods", namespace=NS, resource_version=start, label_selector="app=marker", timeout_seconds=3,
                       allow_bookmarks=True)
    first, _ = await asyncio.gather(stream.__anext__(), k8s.create("pods", pod("marker", app="marker"), namespace=NS))
    assert first.type == "ADDED"
    unseen = await k8s.create("pods", pod("unseen", app="other"), namespace=NS)
    # The bookmark comes 2 s before the deadline, past the write the selector hid.
    events = [event async for event in stream]
    assert events and {e.type for e in events} == {"BOOKMARK"}
    assert int(events[-1].resource_version) >= int(unseen["metadata"]["resourceVersion"])


async def test_closing_a_waiting_watch_ends_its_connection(k8s: KubernetesCluster) -> None:
    stream = k8s.watch("pods", namespace=NS, timeout_seconds=300)
    reader = asyncio.create_task(stream.__anext__())
    await k8s.create("pods", pod("first"), namespace=NS)
    assert (await asyncio.wait_for(reader, TIMEOUT)).object["metadata"]["name"] == "first"
    with_watch = k8s.open_connections
    waiting = asyncio.create_task(stream.__anext__())  # blocked on a silent stream
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, TIMEOUT)
    assert k8s.open_connections == with_watch - 1


async def test_close_leaves_no_connection_behind(sim: SimulatedCluster) -> None:
    cluster = KubernetesCluster.from_kubeconfig(str(sim.kubeconfig_path))
    await asyncio.gather(*(cluster.list("pods", namespace=NS) for _ in range(8)))
    assert 1 <= cluster.open_connections <= 8  # kept for the next requests
    stream = cluster.watch("pods", namespace=NS, timeout_seconds=300)
    pending = asyncio.create_task(stream.__anext__())
    await MemoryCluster(sim.store).create("pods", pod("seen"), namespace=NS)
    await asyncio.wait_for(pending, TIMEOUT)
    waiting = asyncio.create_task(stream.__anext__())
    await cluster.close()
    assert cluster.open_connections == 0
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, TIMEOUT)
    with pytest.raises(i.ServiceUnavailable):
        await cluster.get("pods", "seen", namespace=NS)
    with pytest.raises(i.ServiceUnavailable):
        await cluster.watch("pods", namespace=NS).__anext__()


# ------------------------------------------------------------------ the event loop


async def test_the_loop_runs_other_work_while_a_request_waits(sim: SimulatedCluster, k8s: KubernetesCluster) -> None:
    # The slow request is held at the server until the other one has been answered: if waiting for
    # it blocked the loop (or the adapter's pool), the other request could never be answered.
    order: list[str] = []
    release = asyncio.Event()
    sim.store.faults.inject("get", "pods", hold=release, times=1)

    async def slow() -> None:
        with pytest.raises(i.NotFound):
            await k8s.get("pods", "slow", namespace=NS)
        order.append("slow request answered")

    async def meanwhile() -> None:
        await k8s.create("configmaps", {"metadata": {"name": "fast"}}, namespace=NS)
        order.append("other request answered")
        release.set()

    await asyncio.wait_for(asyncio.gather(slow(), meanwhile()), TIMEOUT)
    assert order == ["other request answered", "slow request answered"]


async def test_an_informer_runs_over_the_adapter(sim: SimulatedCluster, k8s: KubernetesCluster) -> None:
    await k8s.create("pods", pod("a", app="kernel"), namespace=NS)
    async with Informer(k8s, "pods", namespace=NS, label_selector="app=kernel", resync_timeout=30) as pods:
        assert [p["metadata"]["name"] for p in pods.items()] == ["a"]
        await k8s.patch("pods", "a", {"status": {"phase": "Running"}}, namespace=NS, subresource="status")
        running = await pods.wait_for(
            lambda p: p is not None and p.get("status", {}).get("phase") == "Running",
            namespace=NS, name="a", timeout=TIMEOUT,
        )
        assert running is not None
        sim.store.faults.drop_watches("pods")
        await k8s.create("pods", pod("b", app="kernel"), namespace=NS)
        await pods.wait_for(lambda p: p is not None, namespace=NS, name="b", timeout=TIMEOUT)
