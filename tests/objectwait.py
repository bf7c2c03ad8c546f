"""Waiting for objects of any kind to reach a state, by watching them (never by polling).

The tests of the controllers and of the deployed seed use it as ``tests/podwait.py`` is used for pods:

    deployment = await wait_for_object(cluster, "deployments", "ns", "d", lambda d: ..., timeout=10)
    pods = await wait_for_items(cluster, "pods", "ns", lambda pods: len(pods) == 2, label_selector="app=x")

Both list first (a state already reached is seen at once), then watch from the list's
resourceVersion, relisting on 410 Gone; the predicate is offered every state in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.cluster.interface import Cluster, Gone, Obj


class ObjectWaitTimeout(AssertionError):
    """The state was not reached in time; the message shows the last one seen."""


async def wait_for_items(
    cluster: Cluster,
    resource: str,
    namespace: str | None,
    predicate: Callable[[list[Obj]], bool],
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
    timeout: float = 10.0,
) -> list[Obj]:
    """The first state of the selected objects (sorted by name) for which ``predicate`` holds."""
    last: list[Any] = ["(never listed)"]

    async def scan() -> list[Obj]:
        while True:
            listing = await cluster.list(resource, namespace=namespace, label_selector=label_selector,
                                         field_selector=field_selector)
            items = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in listing.get("items") or []}
            version = str(listing.get("metadata", {}).get("resourceVersion", ""))
            while True:
                current = [items[k] for k in sorted(items)]
                last[0] = current
                if predicate(current):
                    return current
                stream = cluster.watch(resource, namespace=namespace, label_selector=label_selector,
                                       field_selector=field_selector, resource_version=version)
                try:
                    async for event in stream:
                        version = event.resource_version or version
                        key = (event.object["metadata"].get("namespace", ""), event.object["metadata"].get("name", ""))
                        if event.type == "DELETED":
                            items.pop(key, None)
                        elif event.type in ("ADDED", "MODIFIED"):
                            items[key] = event.object
                        else:
                            continue
                        current = [items[k] for k in sorted(items)]
                        last[0] = current
                        if predicate(current):
                            return current
                except Gone:
                    break
                finally:
                    aclose = getattr(stream, "aclose", None)
                    if aclose is not None:
                        await aclose()

    try:
        return await asyncio.wait_for(scan(), timeout)
    except asyncio.TimeoutError:
        what = getattr(predicate, "__doc__", None) or "in the awaited state"
        raise ObjectWaitTimeout(f"{resource} in {namespace} not {what} within {timeout}s; last seen: {last[0]!r}") from None


async def wait_for_object(
    cluster: Cluster,
    resource: str,
    namespace: str | None,
    name: str,
    predicate: Callable[[Obj | None], bool],
    *,
    timeout: float = 10.0,
) -> Obj | None:
    """The first state of ``namespace/name`` (``None`` while it does not exist) for which ``predicate`` holds."""
    found = await wait_for_items(
        cluster, resource, namespace, lambda items: predicate(items[0] if items else None),
        field_selector=f"metadata.name={name}", timeout=timeout,
    )
    return found[0] if found else None
