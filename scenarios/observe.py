"""Watching the cluster as its administrator, through the cluster interface only.

Scenarios wait for the cluster to reach a state with :func:`wait_until`: it
lists, then follows a watch from the list's resourceVersion (relisting on 410
Gone, renewing a watch the server ended), and returns as soon as the
predicate holds for the objects it sees, or fails after ``timeout`` seconds
with what it saw last.  No polling, no sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.aio import Backoff
from gateway.cluster.interface import Cluster, Gone, NotFound, Obj

WATCH_SECONDS = 30
"""Server-side timeout of each watch request; the wait renews it until its own timeout."""
KERNEL_KINDS = ("pods", "namespaces", "rolebindings", "services", "configmaps", "secrets", "persistentvolumeclaims")
"""Every kind of object the gateway may create for a kernel, each labelled ``kernel_id=<id>``."""

Objects = dict[tuple[str, str], Obj]
"""Objects by ``(namespace, name)``."""


def key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace") or "", meta["name"]


async def wait_until(observer: Cluster, resource: str, predicate: Callable[[Objects], bool], *,
                     namespace: str | None = None, label_selector: str | None = None,
                     timeout: float, what: str = "") -> Objects:
    """The objects of ``resource`` (in ``namespace``, matching ``label_selector``) once ``predicate`` holds."""
    seen: Objects = {}
    try:
        return await asyncio.wait_for(
            _follow(observer, resource, predicate, seen, namespace=namespace, label_selector=label_selector), timeout)
    except asyncio.TimeoutError:
        names = sorted(f"{ns}/{name}" for ns, name in seen)
        raise AssertionError(f"{what or resource}: not reached within {timeout}s; last seen {names}") from None


async def _follow(observer: Cluster, resource: str, predicate: Callable[[Objects], bool], seen: Objects, *,
                  namespace: str | None, label_selector: str | None) -> Objects:
    while True:
        listing = await observer.list(resource, namespace=namespace, label_selector=label_selector)
        seen.clear()
        seen.update({key(obj): obj for obj in listing["items"]})
        if predicate(seen):
            return dict(seen)
        version = listing["metadata"].get("resourceVersion")
        backoff = Backoff(base=0.05, cap=1.0)
        try:
            while True:
                stream = observer.watch(resource, namespace=namespace, label_selector=label_selector,
                                        resource_version=version, timeout_seconds=WATCH_SECONDS)
                opened = asyncio.get_running_loop().time()
                try:
                    async for event in stream:
                        if event.type == "BOOKMARK":
                            continue
                        version = event.resource_version or version
                        if event.type == "DELETED":
                            seen.pop(key(event.object), None)
                        else:
                            seen[key(event.object)] = event.object
                        if predicate(seen):
                            return dict(seen)
                finally:
                    await stream.aclose()  # type: ignore[attr-defined]
                if asyncio.get_running_loop().time() - opened < WATCH_SECONDS / 2:
                    # The server ended the watch early (stopping, or refusing it): renewing it at once
                    # would spin without ever yielding to the loop, so the wait's own timeout never fired.
                    await asyncio.sleep(backoff.fail())
                else:
                    backoff.reset()
        except Gone:
            continue  # too far behind: relist


def _name_of(resource: str, obj: Obj) -> str:
    return f"{resource}/{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


async def kernel_objects(observer: Cluster, kernel_id: str) -> set[str]:
    """``kind/namespace/name`` of every object labelled for the kernel.

    Objects being deleted count: a namespace that is still terminating, with the pods in it, is not gone.
    """
    return await _labelled(observer, f"kernel_id={kernel_id}")


async def every_kernel_object(observer: Cluster) -> set[str]:
    """``kind/namespace/name`` of every object labelled for any kernel, those being deleted included."""
    return await _labelled(observer, "kernel_id")


async def _labelled(observer: Cluster, selector: str) -> set[str]:
    found: set[str] = set()
    for resource in KERNEL_KINDS:
        listing = await observer.list(resource, label_selector=selector)
        found.update(_name_of(resource, obj) for obj in listing["items"])
    return found


async def only_these_left(observer: Cluster, allowed: set[str], *, timeout: float) -> set[str]:
    """Wait until no kernel object but ``allowed`` exists (deleted, not just being deleted); what else is left then.

    Each kind is followed by its watch; objects still there when ``timeout`` runs out are returned
    (an empty set: nothing else is left).
    """
    deadline = asyncio.get_running_loop().time() + timeout
    for resource in KERNEL_KINDS:
        def settled(objects: Objects, resource: str = resource) -> bool:
            return {_name_of(resource, obj) for obj in objects.values()} <= allowed

        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        try:
            await wait_until(observer, resource, settled, label_selector="kernel_id", timeout=remaining,
                             what=f"{resource} of kernels gone")
        except AssertionError:
            break
    return await every_kernel_object(observer) - allowed


async def namespace_names(observer: Cluster) -> set[str]:
    """Every namespace, those being deleted included: a namespace created then deleted still was created."""
    listing = await observer.list("namespaces")
    return {ns["metadata"]["name"] for ns in listing["items"]}


async def kernel_pod(observer: Cluster, kernel_id: str, *, timeout: float, other_than: str = "") -> Obj:
    """The kernel's pod once it runs (one not being deleted, with a uid other than ``other_than``)."""
    def running(objects: Objects) -> bool:
        return any(_is_running(pod) and pod["metadata"]["uid"] != other_than for pod in objects.values())

    pods = await wait_until(observer, "pods", running, label_selector=f"kernel_id={kernel_id}", timeout=timeout,
                            what=f"a running pod of kernel {kernel_id}")
    return next(p for p in pods.values() if _is_running(p) and p["metadata"]["uid"] != other_than)


def _is_running(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")


async def gone(observer: Cluster, kernel_id: str, *, timeout: float) -> None:
    """Wait until every object of the kernel has disappeared (deleted, not just being deleted)."""
    for resource in KERNEL_KINDS:
        await wait_until(observer, resource, lambda objects: not objects, label_selector=f"kernel_id={kernel_id}",
                         timeout=timeout, what=f"{resource} of kernel {kernel_id} gone")


async def get_or_none(observer: Cluster, resource: str, name: str, namespace: str | None = None) -> Obj | None:
    try:
        return await observer.get(resource, name, namespace=namespace)
    except NotFound:
        return None


async def may(observer: Cluster, user: str, groups: list[str], verb: str, resource: str, namespace: str,
              ) -> bool:
    """SubjectAccessReview: may ``user`` (in ``groups``) ``verb`` ``resource`` in ``namespace``?"""
    review: dict[str, Any] = {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": groups,
                 "resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace}},
    }
    answer = await observer.create("subjectaccessreviews", review)
    return bool((answer.get("status") or {}).get("allowed"))


def service_account_identity(namespace: str, name: str) -> tuple[str, list[str]]:
    """The user name and groups the API server gives a service account's tokens."""
    return (f"system:serviceaccount:{namespace}:{name}",
            ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"])
