"""Helpers of the contract suite: object bodies and waiting for cluster state by watching.

A real cluster's controllers (garbage collector, namespace controller) act
asynchronously, so tests wait for the state they assert with
:func:`wait_for`, which lists once and then watches: no polling, and a
timeout on every wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

from gateway.cluster.interface import Cluster, WatchEvent
from tests.differential.wire import Answer, Wire

WAIT_SECONDS = 10.0
APPLY = "application/apply-patch+yaml"


TEST_SCHEDULER = "contract-tests"
"""The scheduler the suite's pods name: none runs, so on a real cluster no scheduler binds them and no kubelet
runs them; the tests bind them themselves (the simulated targets have neither)."""


def pod(name: str, *, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A minimal valid pod body, left to the test to bind (:data:`TEST_SCHEDULER`)."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"schedulerName": TEST_SCHEDULER,
                 "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}]},
    }
    body["spec"].update(spec)
    return body


def configmap(name: str, *, labels: dict[str, str] | None = None, data: dict[str, str] | None = None,
              owners: list[dict[str, Any]] | None = None, finalizers: list[str] | None = None) -> dict[str, Any]:
    """A config map body, optionally owned by ``owners`` (objects) or held by ``finalizers``."""
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    if owners:
        meta["ownerReferences"] = [owner_ref(o) for o in owners]
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {}}


def owner_ref(owner: dict[str, Any], *, block: bool = True) -> dict[str, Any]:
    """An ownerReference to stored object ``owner`` (blocking its foreground deletion by default)."""
    return {
        "apiVersion": owner.get("apiVersion", "v1"),
        "kind": owner.get("kind", "ConfigMap"),
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": block,
    }


async def next_event(stream: AsyncIterator[WatchEvent], timeout: float = WAIT_SECONDS) -> WatchEvent:
    """The next event of a watch, failing the test instead of hanging."""
    return await asyncio.wait_for(stream.__anext__(), timeout)


async def next_event_of(stream: AsyncIterator[WatchEvent], names: Collection[str],
                        timeout: float = WAIT_SECONDS) -> WatchEvent:
    """The next event of a watch about an object named in ``names``, skipping the rest.

    Tests that watch a whole namespace's config maps call it: a real cluster's root-CA publisher adds
    ``kube-root-ca.crt`` to every new namespace at a moment of its own, before or after a test's list.
    """
    async def mine() -> WatchEvent:
        async for event in stream:
            if event.object["metadata"]["name"] in names:
                return event
        raise StopAsyncIteration
    return await asyncio.wait_for(mine(), timeout)


async def wait_for(
    cluster: Cluster,
    resource: str,
    name: str,
    *,
    namespace: str | None = None,
    until: Callable[[dict[str, Any] | None], bool],
    timeout: float = WAIT_SECONDS,
) -> dict[str, Any] | None:
    """Wait until object ``name`` satisfies ``until`` (called with ``None`` once it is gone); return it."""
    selector = f"metadata.name={name}"
    listed = await cluster.list(resource, namespace=namespace, field_selector=selector)
    current = listed["items"][0] if listed["items"] else None
    if until(current):
        return current
    stream = cluster.watch(resource, namespace=namespace, field_selector=selector,
                           resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=timeout)

    async def follow() -> dict[str, Any] | None:
        async for event in stream:
            if event.type == "BOOKMARK":
                continue
            obj = None if event.type == "DELETED" else event.object
            if until(obj):
                return obj
        raise AssertionError(f"{resource}/{name} never reached the awaited state (last: {current})")

    try:
        return await asyncio.wait_for(follow(), timeout)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def wait_gone(cluster: Cluster, resource: str, name: str, *, namespace: str | None = None) -> None:
    await wait_for(cluster, resource, name, namespace=namespace, until=lambda o: o is None)


class Client:
    """The target's API server over HTTP, for what the cluster interface cannot send (a field manager, delete
    preconditions), off the event loop (the simulated server runs on it).  Made by the ``client`` fixture."""

    def __init__(self, wire: Wire, namespace: str) -> None:
        self.wire = wire
        self.namespace = namespace

    async def send(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                   **params: str) -> Answer:
        return await asyncio.to_thread(self.wire.send, method, path, body=body, content_type=content_type,
                                       params=params or None)

    def configmap_path(self, name: str) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps/{name}"

    async def apply(self, name: str, body: dict[str, Any], manager: str, **params: str) -> Answer:
        config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **body}
        return await self.send("PATCH", self.configmap_path(name), config, content_type=APPLY, fieldManager=manager,
                               **params)
