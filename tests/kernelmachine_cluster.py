"""The world of the kernel-service state machine: gateway replicas on one simulated cluster, and its settled state.

:class:`KernelWorld` starts, stops and kills replicas (each a whole kernel side, ``tests/gatewayharness.py``'s
:class:`~tests.gatewayharness.Stack`: its own informers, records, admissions and Lease elector) over one
store and one node agent, and waits for the cluster to settle: :meth:`KernelWorld.settle` follows
every kernel-labelled object with watches until no operation is in progress, every recorded kernel
runs on exactly one running pod and nothing else of any kernel is left, then returns the records.
Every wait is bounded and awaits watch events or state changes, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.cluster.interface import Obj
from gateway.kernels.kernel import BUSY, IDLE
from gateway.objects.labels import KERNEL_ID_LABEL
from gateway.objects.record import RECORD_COMPONENT, KernelRecord, Phase, parse_record
from scenarios.observe import KERNEL_KINDS, wait_until
from tests.gatewayharness import GATEWAY_NAMESPACE, USER_ACCOUNT, USER_NAMESPACE, SharedCluster, Stack, shared_cluster
from tests.kernelmachine_views import Observer, PodLedger, ReplicaView

LAUNCH_TIMEOUT = 20.0
"""The replicas' ``EG_KERNEL_LAUNCH_TIMEOUT``: a launch ends ready or failed within it."""
MAX_KERNELS = 3
MAX_PER_USER = 2
REPLICA_SETTINGS: dict[str, Any] = {
    "launch_timeout": LAUNCH_TIMEOUT, "max_kernels": MAX_KERNELS, "max_kernels_per_user": MAX_PER_USER,
    "restart_limit": 10, "restart_backoff": 0.1, "restart_backoff_cap": 0.5, "deadline_grace": 1.0, "leftover_grace": 3.0, "stop_timeout": 5.0,
    "activity_write_interval": 1.0,
}
"""Every replica's kernel settings: short deadlines so the lease holder takes over abandoned work quickly."""
SETTLE = 90.0
"""Bound on the cluster settling: a take-over waits for a launch deadline, the lease for its expiry."""
VIEW = 30.0
"""Bound on a replica's informers catching up with the cluster."""
UP = (IDLE, BUSY)


@dataclass
class Settled:
    """The cluster at rest: each recorded kernel's record and its one pod."""

    records: dict[str, KernelRecord]
    pods: dict[str, Obj]
    admitted: dict[str, str]


class KernelWorld:
    """Replicas on one simulated cluster, by name; ``views`` of the live ones (see the module docstring)."""

    def __init__(self, cluster: SharedCluster, observer: Observer, ledger: PodLedger) -> None:
        self.cluster = cluster
        self.observer = observer
        self.ledger = ledger
        self.replicas: dict[str, Stack] = {}
        self.views: dict[str, ReplicaView] = {}
        self._made = 0
        self._killed: list[asyncio.Task[None]] = []
        """The stops of killed replicas: their tasks end in the background, as a killed process's do at once."""

    @property
    def store(self) -> Any:
        return self.cluster.store

    @property
    def shared(self) -> bool:
        return self.cluster.mode == "shared"

    # ------------------------------------------------------------------ replicas

    async def start_replica(self) -> str:
        """A new replica (as a Deployment replaces a pod): it adopts every kernel recorded."""
        name = f"replica-{self._made}"
        self._made += 1
        stack = await self.cluster.gateway(name, **REPLICA_SETTINGS)
        self.replicas[name] = stack
        self.views[name] = ReplicaView(name, stack.service)
        return name

    async def stop_replica(self, name: str) -> None:
        """SIGTERM: the replica finishes what it does, releases the Lease, leaves the kernels to the others."""
        stack = self.replicas.pop(name)
        del self.views[name]
        await stack.stop()

    async def kill_replica(self, name: str) -> None:
        """SIGKILL: from now on nothing of the replica reaches the cluster; its tasks are cancelled, its objects stay."""
        stack = self.replicas.pop(name)
        del self.views[name]
        await stack.crash()
        # Severed, its stop ends its tasks without a single request reaching the cluster.
        self._killed.append(asyncio.create_task(stack.stop(), name=f"the end of {name}"))

    async def close(self) -> None:
        """Stop every replica still running; wait for the killed ones' tasks to have ended."""
        for name in list(self.replicas):
            await self.stop_replica(name)
        await asyncio.gather(*self._killed)

    async def lease_holder(self) -> str | None:
        listing = await self.observer.list("leases", namespace=GATEWAY_NAMESPACE)
        for lease in listing["items"]:
            return str((lease.get("spec") or {}).get("holderIdentity") or "") or None
        return None

    # ------------------------------------------------------------------ settling

    async def settle(self, *, must_live: Iterable[str], must_be_gone: Iterable[str],
                     past: Callable[[Settled], bool] = lambda settled: True) -> Settled:
        """Wait until the cluster is at rest (see the module docstring) with ``must_live`` recorded running,
        nothing of ``must_be_gone`` left, and ``past`` true of it; the records, pods and admissions then."""
        live, gone = set(must_live), set(must_be_gone)
        latest: dict[str, Settled] = {}

        def at_rest(objects: dict[str, dict[tuple[str, str], Obj]]) -> bool:
            settled = _at_rest(objects)
            if (settled is None or not live <= settled.records.keys() or gone & settled.records.keys()
                    or not past(settled)):
                return False
            latest["now"] = settled
            return True

        try:
            await _follow_kinds(self.observer, at_rest, SETTLE)
        except asyncio.TimeoutError:
            raise AssertionError(f"the cluster did not settle within {SETTLE}s: {await self.describe()}") from None
        settled = latest["now"]
        settled.admitted = await self.admitted()
        return settled

    async def admitted(self) -> dict[str, str]:
        return await self.cluster.admitted()

    async def describe(self) -> str:
        """Every kernel object and record phase, for a failure message."""
        lines = []
        for resource in KERNEL_KINDS:
            listing = await self.observer.list(resource, label_selector=KERNEL_ID_LABEL)
            for obj in listing["items"]:
                meta = obj["metadata"]
                extra = ""
                if _is_record(obj):
                    record = parse_record(obj)
                    extra = f" {record.phase.value} by {record.actor} pod {record.pod}"
                elif resource == "pods":
                    extra = f" {(obj.get('status') or {}).get('phase')} uid {meta['uid']}"
                gone = " (being deleted)" if meta.get("deletionTimestamp") else ""
                lines.append(f"{resource}/{meta.get('namespace', '')}/{meta['name']}{extra}{gone}")
        return "\n  " + "\n  ".join(lines or ["(nothing)"])

    async def foreign_objects_kept(self) -> None:
        """What the gateway did not create is never deleted: its namespace, the user's namespace and account."""
        assert await self.cluster.namespace_exists(GATEWAY_NAMESPACE)
        assert await self.cluster.namespace_exists(USER_NAMESPACE)
        account = await self.observer.list("serviceaccounts", namespace=USER_NAMESPACE,
                                           field_selector=f"metadata.name={USER_ACCOUNT}")
        assert account["items"], "the user's service account was deleted"

    async def views_agree(self, settled: Settled) -> None:
        """Every live replica lists exactly the recorded kernels, each up on the pod the cluster runs for it."""
        expected = {kernel_id: record.pod.uid for kernel_id, record in settled.records.items() if record.pod}

        for view in list(self.views.values()):
            def agrees(view: ReplicaView = view) -> bool:
                served = {k.id: k for k in view.service.list()}
                return served.keys() == expected.keys() and all(
                    k.state in UP and k.running is not None and k.running.pod_uid == expected[k.id]
                    for k in served.values())

            def shown(view: ReplicaView = view) -> str:
                return str({k.id: (k.state, k.running and k.running.pod_uid) for k in view.service.list()})

            try:
                await view.until(agrees, VIEW, "the cluster's kernels")
            except AssertionError as error:
                raise AssertionError(f"{error}: serves {shown()}, the cluster runs {expected}") from None


def _is_record(obj: Obj) -> bool:
    return (obj["metadata"].get("labels") or {}).get("component") == RECORD_COMPONENT


def _at_rest(objects: dict[str, dict[tuple[str, str], Obj]]) -> Settled | None:
    """The cluster's kernels if at rest: every record running on one running pod, and nothing of other kernels."""
    records: dict[str, KernelRecord] = {}
    for secret in objects.get("secrets", {}).values():
        if _is_record(secret) and secret["metadata"].get("namespace") == GATEWAY_NAMESPACE:
            record = parse_record(secret)
            if record.phase is not Phase.RUNNING or record.pod is None:
                return None
            records[record.kernel_id] = record
    pods: dict[str, Obj] = {}
    for resource, found in objects.items():
        for obj in found.values():
            meta = obj["metadata"]
            if meta["labels"][KERNEL_ID_LABEL] not in records or meta.get("deletionTimestamp"):
                return None
            if resource != "pods":
                continue
            kernel_id = meta["labels"][KERNEL_ID_LABEL]
            if kernel_id in pods or (obj.get("status") or {}).get("phase") != "Running":
                return None
            pods[kernel_id] = obj
    for kernel_id, record in records.items():
        if kernel_id not in pods or record.pod is None or pods[kernel_id]["metadata"]["uid"] != record.pod.uid:
            return None
    return Settled(records, pods, {})


async def _follow_kinds(observer: Observer, predicate: Callable[[dict[str, dict[tuple[str, str], Obj]]], bool],
                        timeout: float) -> None:
    """Follow every kind of kernel object with a watch; return once ``predicate`` holds for all of them at once."""
    seen: dict[str, dict[tuple[str, str], Obj]] = {}
    synced: set[str] = set()
    reached = asyncio.get_running_loop().create_future()

    def offer(resource: str, objects: dict[tuple[str, str], Obj]) -> bool:
        seen[resource] = dict(objects)
        synced.add(resource)
        if len(synced) == len(KERNEL_KINDS) and not reached.done() and predicate(seen):
            reached.set_result(None)
        return False  # keep following

    def offered(resource: str) -> Callable[[dict[tuple[str, str], Obj]], bool]:
        return lambda objects: offer(resource, objects)

    followers = [asyncio.create_task(wait_until(observer, resource, offered(resource), label_selector=KERNEL_ID_LABEL,
                                                timeout=timeout + 1))
                 for resource in KERNEL_KINDS]
    try:
        await asyncio.wait_for(asyncio.shield(reached), timeout)
    finally:
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)


@contextlib.asynccontextmanager
async def kernel_world(tmp_path: Path, *, shared: bool) -> AsyncIterator[KernelWorld]:
    """A fresh simulated cluster (``shared``: ``EG_SHARED_NAMESPACE``) with one replica; all stopped at the end."""
    async with shared_cluster(tmp_path, mode="shared" if shared else "own") as cluster:
        observer = Observer(cluster.store)
        ledger = PodLedger(observer)
        await ledger.start()
        world = KernelWorld(cluster, observer, ledger)
        try:
            await world.start_replica()
            yield world
        finally:
            await world.close()
            await ledger.stop()
            await observer.close()
