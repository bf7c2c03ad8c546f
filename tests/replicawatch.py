"""What gateway replicas keep in the cluster, watched as its administrator, for ``tests/test_replicas.py``.

The design (a kernel's record is the Secret ``kernel-<id>`` in the gateway's namespace, labelled
``component=kernel-record``, its ``data.record`` base64 of JSON; the duties are a Lease in the
same namespace) read from outside, as ``kubectl`` would::

    record = await wait_record(admin, kernel_id, lambda r: r["phase"] == "running", timeout=60, what="...")
    holder = await lease_held(admin, lambda holder, renewed: bool(holder), timeout=10, what="...")
    async with pods_seen(admin, kernel_id) as uids: ...        # every pod of the kernel meanwhile
    await nothing_left(admin, [kernel_id], [namespace])        # deleted, not just being deleted
    assert not leaks(keys, await everything(admin))            # a connection key outside its record

Every wait lists and then watches (``scenarios.observe.wait_until``), and is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from tornado.websocket import WebSocketClientConnection

from gateway.aio import cancel_and_wait
from gateway.cluster.interface import Cluster, Obj
from gateway.cluster.resources import RESOURCES
from scenarios.observe import KERNEL_KINDS, Objects, wait_until

GATEWAY_NAMESPACE = "enterprise-gateway"
RECORD_COMPONENT = "kernel-record"
ADMISSIONS = "kernelgate-admissions"
"""The ConfigMap of the gateway's namespace naming every admitted kernel."""
WAIT = 60.0


def record_name(kernel_id: str) -> str:
    """The name of a kernel's record, a Secret in the gateway's namespace."""
    return f"kernel-{kernel_id}"


def kernel_record(secret: Obj) -> dict[str, Any]:
    """The record a kernel-record Secret holds (``data.record``: base64 of JSON)."""
    return json.loads(base64.b64decode(secret["data"]["record"]))


async def closed(ws: WebSocketClientConnection, timeout: float = WAIT) -> None:
    """Wait until the other end closed ``ws`` (messages still in flight are read and dropped)."""
    while await asyncio.wait_for(ws.read_message(), timeout) is not None:
        pass


# --------------------------------------------------------------------------- records and the lease


async def wait_record(admin: Cluster, kernel_id: str, accept: Callable[[dict[str, Any]], bool], *,
                      timeout: float, what: str) -> dict[str, Any]:
    """The kernel's record once ``accept`` holds for it."""
    def holds(objects: Objects) -> bool:
        return any(accept(kernel_record(secret)) for secret in objects.values())

    found = await wait_until(admin, "secrets", holds, namespace=GATEWAY_NAMESPACE,
                             label_selector=f"kernel_id={kernel_id}", timeout=timeout, what=what)
    return next(r for r in map(kernel_record, found.values()) if accept(r))


def _holder_and_renewal(lease: Obj) -> tuple[str, datetime]:
    spec = lease.get("spec") or {}
    return spec.get("holderIdentity") or "", datetime.fromisoformat(spec.get("renewTime") or "1970-01-01T00:00:00Z")


async def lease_held(admin: Cluster, accept: Callable[[str, datetime], bool], *, timeout: float,
                     what: str) -> str:
    """The holder of the duties' Lease (in the gateway's namespace) once ``accept(holder, renewTime)`` holds."""
    def holds(leases: Objects) -> bool:
        return any(accept(*_holder_and_renewal(lease)) for lease in leases.values())

    leases = await wait_until(admin, "leases", holds, namespace=GATEWAY_NAMESPACE, timeout=timeout, what=what)
    return next(holder for holder, renewed in map(_holder_and_renewal, leases.values()) if accept(holder, renewed))


# --------------------------------------------------------------------------- pods and leftovers


@contextlib.asynccontextmanager
async def pods_seen(admin: Cluster, kernel_id: str) -> AsyncIterator[set[str]]:
    """The uids of every pod of the kernel that existed while the block ran (the watch's every version)."""
    seen: set[str] = set()
    listed = asyncio.Event()

    def record(objects: Objects) -> bool:
        seen.update(pod["metadata"]["uid"] for pod in objects.values())
        listed.set()
        return False

    follower = asyncio.create_task(wait_until(admin, "pods", record, label_selector=f"kernel_id={kernel_id}",
                                              timeout=10 * WAIT))
    try:
        await asyncio.wait_for(listed.wait(), WAIT)
        yield seen
    finally:
        await cancel_and_wait(follower)


async def nothing_left(admin: Cluster, kernel_ids: Iterable[str], namespaces: Iterable[str], *,
                       timeout: float = WAIT) -> None:
    """Wait until nothing of the kernels exists, not even being deleted: no object labelled for them (their
    records included), nothing in the namespaces they ran in but the gateway's, and no admission left."""
    kernel_ids = list(kernel_ids)
    for kernel_id in kernel_ids:
        for resource in KERNEL_KINDS:
            await wait_until(admin, resource, lambda objects: not objects, label_selector=f"kernel_id={kernel_id}",
                             timeout=timeout, what=f"{resource} of kernel {kernel_id} gone")
    for namespace in namespaces:
        if namespace == GATEWAY_NAMESPACE:
            continue
        for resource in ("serviceaccounts", "rolebindings", "pods"):
            await wait_until(admin, resource, lambda objects: not objects, namespace=namespace, timeout=timeout,
                             what=f"{resource} in namespace {namespace} gone")
        await wait_until(admin, "namespaces", _without({namespace}), timeout=timeout,
                         what=f"namespace {namespace} gone")
    records = {record_name(k) for k in kernel_ids}
    await wait_until(admin, "secrets", _without(records), namespace=GATEWAY_NAMESPACE, timeout=timeout,
                     what=f"records {sorted(records)} gone")

    def unadmitted(maps: Objects) -> bool:
        return not any(set(ledger.get("data") or {}) & set(kernel_ids)
                       for (_, name), ledger in maps.items() if name == ADMISSIONS)

    await wait_until(admin, "configmaps", unadmitted, namespace=GATEWAY_NAMESPACE, timeout=timeout,
                     what=f"admissions of {kernel_ids} gone")


def _without(names: set[str]) -> Callable[[Objects], bool]:
    """Whether none of the objects seen is named one of ``names``."""
    return lambda objects: not names & {name for _, name in objects}


async def first_of(timeout: float, **waits: Awaitable[Any]) -> str:
    """The name of the first of ``waits`` to finish without error (the others cancelled); fails if none does."""
    tasks = {asyncio.ensure_future(wait): name for name, wait in waits.items()}
    errors: dict[str, BaseException | None] = {}
    try:
        pending = set(tasks)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending:
            done, pending = await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()),
                                               return_when=asyncio.FIRST_COMPLETED)
            if not done:
                break
            for task in done:
                if task.exception() is None:
                    return tasks[task]
                errors[tasks[task]] = task.exception()
        raise AssertionError(f"none of {sorted(waits)} within {timeout}s: {errors}")
    finally:
        for task in tasks:
            await cancel_and_wait(task)


# --------------------------------------------------------------------------- where a key may not be


def written_forms(key: str) -> list[str]:
    """``key`` as text, and the base64 runs any encoding of bytes containing it contains (one per alignment)."""
    raw = key.encode()
    forms = [key]
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start, end = -(-8 * offset // 6), 8 * (offset + len(raw)) // 6  # the characters made of key bits only
        forms.append(encoded[start:end])
    return forms


async def everything(admin: Cluster) -> list[tuple[str, str]]:
    """``(where, JSON)`` of every object of the cluster, but a kernel record's ``data``; other Secrets' data decoded."""
    found = []
    for resource in RESOURCES.values():
        if "list" not in resource.verbs:
            continue
        for obj in (await admin.list(resource.plural))["items"]:
            meta = obj["metadata"]
            if resource.plural == "secrets":
                obj = dict(obj)
                data = obj.pop("data", None) or {}
                if (meta.get("labels") or {}).get("component") != RECORD_COMPONENT:
                    obj["decoded"] = {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
            found.append((f"{resource.plural}/{meta.get('namespace', '')}/{meta['name']}", json.dumps(obj)))
    return found


def leaks(keys: Iterable[str], texts: Iterable[tuple[str, str]]) -> list[str]:
    """Where (of ``(where, text)`` pairs) any of ``keys`` is written, as text or inside base64."""
    forms = [form for key in keys for form in written_forms(key)]
    return [where for where, text in texts if any(form in text for form in forms)]
