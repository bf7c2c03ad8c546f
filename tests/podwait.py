"""Waiting for a pod to reach a state, by watching it (never by polling).

Shared by the tests of the node agent, the provisioner and the scenarios:

    pod = await wait_for_pod(cluster, "ns", "p", phase_is("Succeeded"), timeout=10)
    await wait_for_pod_deleted(cluster, "ns", "p", timeout=10)

Both list the pod first (so a state already reached is seen at once), then
watch from the list's resourceVersion, relisting on 410 Gone.  Passing
``resource_version`` instead starts the watch there, so every intermediate
version of the pod since then is offered to the predicate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.cluster.interface import Cluster, Gone, Obj

PodPredicate = Callable[[Obj], bool]


class PodWaitTimeout(AssertionError):
    """The pod did not reach the state in time; the message shows the last version seen."""


async def _versions(cluster: Cluster, namespace: str, name: str, resource_version: str | None):
    """Yield the pod's versions (``None`` when it is deleted), from ``resource_version`` or its current state."""
    selector = f"metadata.name={name}"
    rv = resource_version
    while True:
        if rv is None:
            listing = await cluster.list("pods", namespace=namespace, field_selector=selector)
            items = listing.get("items") or []
            yield items[0] if items else None
            rv = str(listing.get("metadata", {}).get("resourceVersion", ""))
        stream = cluster.watch("pods", namespace=namespace, field_selector=selector, resource_version=rv)
        try:
            async for event in stream:
                rv = event.resource_version or rv
                if event.type == "DELETED":
                    yield None
                elif event.type in ("ADDED", "MODIFIED"):
                    yield event.object
        except Gone:
            rv = None
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()


async def _wait(cluster: Cluster, namespace: str, name: str, accept: Callable[[Obj | None], bool],
                timeout: float, resource_version: str | None, what: str) -> Obj | None:
    last: list[Any] = ["(never seen)"]

    async def scan() -> Obj | None:
        stream = _versions(cluster, namespace, name, resource_version)
        try:
            async for pod in stream:
                last[0] = pod
                if accept(pod):
                    return pod
        finally:
            await stream.aclose()
        raise AssertionError("watch ended")  # unreachable: _versions resumes forever

    try:
        return await asyncio.wait_for(scan(), timeout)
    except asyncio.TimeoutError:
        raise PodWaitTimeout(f"pod {namespace}/{name} not {what} within {timeout}s; last seen: {last[0]!r}") from None


async def wait_for_pod(
    cluster: Cluster,
    namespace: str,
    name: str,
    predicate: PodPredicate,
    timeout: float = 10.0,
    *,
    resource_version: str | None = None,
) -> Obj:
    """The first version of pod ``namespace/name`` for which ``predicate`` holds; :class:`PodWaitTimeout` otherwise."""
    found = await _wait(cluster, namespace, name, lambda p: p is not None and predicate(p), timeout,
                        resource_version, getattr(predicate, "__doc__", None) or "in the awaited state")
    assert found is not None
    return found


async def wait_for_pod_deleted(cluster: Cluster, namespace: str, name: str, timeout: float = 10.0) -> None:
    """Return once pod ``namespace/name`` no longer exists."""
    await _wait(cluster, namespace, name, lambda p: p is None, timeout, None, "deleted")


# --------------------------------------------------------------------------- predicates


def _described(doc: str, fn: PodPredicate) -> PodPredicate:
    fn.__doc__ = doc
    return fn


def phase_is(*phases: str) -> PodPredicate:
    """The pod's ``status.phase`` is one of ``phases``."""
    return _described(f"in phase {'/'.join(phases)}", lambda pod: (pod.get("status") or {}).get("phase") in phases)


def container_status(pod: Obj, container: str | None = None) -> dict[str, Any] | None:
    """The status of ``container`` (the first container when ``None``), if reported."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if container in (None, cs.get("name")):
            return cs
    return None


def container_state(pod: Obj, container: str | None = None) -> dict[str, Any]:
    """The ``state`` of a container (``{}`` when not reported yet)."""
    cs = container_status(pod, container)
    return (cs or {}).get("state") or {}


def waiting_reason(reason: str, container: str | None = None) -> PodPredicate:
    """A container waits with ``reason`` (``ImagePullBackOff``, ``CrashLoopBackOff``...)."""
    return _described(
        f"waiting with {reason}",
        lambda pod: (container_state(pod, container).get("waiting") or {}).get("reason") == reason,
    )


def container_running(container: str | None = None) -> PodPredicate:
    """A container is running."""
    return _described("running", lambda pod: "running" in container_state(pod, container))


def container_terminated(container: str | None = None) -> PodPredicate:
    """A container has terminated (its current state)."""
    return _described("terminated", lambda pod: "terminated" in container_state(pod, container))


def condition_is(ctype: str, status: str, reason: str | None = None) -> PodPredicate:
    """Condition ``ctype`` has ``status`` (and ``reason`` when given)."""

    def check(pod: Obj) -> bool:
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == ctype:
                return cond.get("status") == status and (reason is None or cond.get("reason") == reason)
        return False

    return _described(f"{ctype}={status}" + (f" ({reason})" if reason else ""), check)
