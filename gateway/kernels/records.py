"""The kernel records as the kernel service reads and writes them: a watched cache, and writes under concurrency.

Every replica keeps one informer over the records (Secrets labelled
``component=kernel-record`` in the gateway's namespace, see :mod:`gateway.objects.record`);
:class:`RecordStore` reads them from that cache (no API call) and writes them through the
cluster.  Writes quote the ``resourceVersion`` they read: a :class:`~gateway.cluster.interface.Conflict`
means another replica changed the record first, and the caller reads again and decides again
(:meth:`RecordStore.modify` does exactly that).

The cache shows this replica's own writes only once their watch events arrive; until then
:meth:`RecordStore.get` answers with what was written (an overlay dropped as soon as the cache
moves past the version the write replaced), so a replica never acts on an older record than
the one it wrote.

Calls are bounded in time and retried after a jittered back-off while the API is briefly
unavailable; past that they fail with :class:`RecordUnavailable` (503).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from gateway.aio import Backoff
from gateway.cluster.informer import Informer, Subscription
from gateway.cluster.interface import Cluster, Conflict, NotFound, Obj, ServerError, TooManyRequests
from gateway.objects.record import KernelRecord, RecordError, parse_record, record_name, record_secret

from .errors import KernelError

log = logging.getLogger("gateway.kernels.records")

T = TypeVar("T")

CALL_TIMEOUT = 10.0
"""Bound on one record write."""
CALL_ATTEMPTS = 4
"""Tries of a record write while the API answers 5xx/429 or not at all."""
SETTLE_TIMEOUT = 5.0
"""Bound on waiting for the cache to catch up with a record another replica changed (after a conflict)."""
MODIFY_ATTEMPTS = 8


class RecordUnavailable(KernelError):
    """The Kubernetes API did not take a kernel record write in time: the gateway cannot vouch for the kernel."""

    status = 503


@dataclass(frozen=True)
class _Written:
    """Writes of this replica not yet seen by the cache: the versions they replaced, and the last result.

    ``replaced`` holds every version the chain of writes went through (``""``: no record yet), so a
    cache still at any of them is behind the write; ``record`` is the result (``None``: deleted).
    """

    replaced: frozenset[str]
    record: KernelRecord | None


class RecordStore:
    """The records of one gateway namespace (see the module docstring).

    Built by the composition root over the gateway's cluster and the started records informer;
    used by the kernel service, its record follower and the lease holder's duties.
    """

    def __init__(self, cluster: Cluster, informer: Informer, namespace: str, *, backoff: Backoff | None = None) -> None:
        self._cluster = cluster
        self.informer = informer
        self.namespace = namespace
        self._backoff_base = backoff or Backoff(base=0.2, cap=2.0)
        self._parsed: dict[str, tuple[str, KernelRecord | None]] = {}
        """Secret name -> (resourceVersion, its record or None when malformed): each version parsed once."""
        self._written: dict[str, _Written] = {}

    # ------------------------------------------------------------------ reading (cache only)

    def get(self, kernel_id: str) -> KernelRecord | None:
        """The freshest record of the kernel this replica knows (``None``: it has none)."""
        name = record_name(kernel_id)
        cached = self.informer.get(self.namespace, name)
        written = self._written.get(name)
        if written is not None:
            if _version(cached) in written.replaced:
                return written.record
            del self._written[name]  # the cache moved past our writes
        return self._parse(cached) if cached is not None else None

    def all(self) -> list[KernelRecord]:
        """Every well-formed record, freshest known version of each."""
        records = []
        for obj in self.informer.items():
            kernel_id = ((obj.get("metadata") or {}).get("labels") or {}).get("kernel_id")
            record = self.get(kernel_id) if isinstance(kernel_id, str) and kernel_id else None
            if record is not None:
                records.append(record)
        return records

    def kernel_ids(self) -> set[str]:
        """The kernel ids of every record Secret in the cache (well-formed or not), from their labels (no parsing)."""
        return {kernel_id for obj in self.informer.items() if (kernel_id := self.kernel_id_of(obj)) is not None}

    def kernel_id_of(self, obj: Obj) -> str | None:
        """The kernel id a record Secret (well-formed or not) stands for, from its label."""
        kernel_id = ((obj.get("metadata") or {}).get("labels") or {}).get("kernel_id")
        return kernel_id if isinstance(kernel_id, str) and kernel_id else None

    def subscribe(self, *, replay: bool) -> Subscription:
        """Changes of the records' Secrets (with ``replay``, an ``ADDED`` for each cached one first)."""
        return self.informer.subscribe(replay=replay)

    async def wait_for(self, kernel_id: str, predicate: Callable[[KernelRecord | None], bool],
                       timeout: float) -> KernelRecord | None:
        """Wait until ``predicate(record)`` holds for the kernel's record as the cache sees it (``None``: none).

        Raises ``asyncio.TimeoutError`` after ``timeout``; used to wait for another replica's
        restart or shutdown to end, and for the cache to catch up after a conflict.
        """
        def check(obj: Obj | None) -> bool:
            return predicate(self._parse(obj) if obj is not None else None)

        obj = await self.informer.wait_for(check, namespace=self.namespace, name=record_name(kernel_id),
                                           timeout=timeout)
        return self._parse(obj) if obj is not None else None

    def _parse(self, obj: Obj) -> KernelRecord | None:
        name = str((obj.get("metadata") or {}).get("name") or "")
        version = _version(obj)
        known = self._parsed.get(name)
        if known is not None and known[0] == version:
            return known[1]
        try:
            record: KernelRecord | None = parse_record(obj)
        except RecordError as error:
            log.error("secret %s/%s is not a kernel record this gateway can read: %s", self.namespace, name, error)
            record = None
        self._parsed[name] = (version, record)
        if len(self._parsed) > 4 * max(16, len(self.informer.items())):
            live = {str((o.get("metadata") or {}).get("name")) for o in self.informer.items()}
            self._parsed = {n: v for n, v in self._parsed.items() if n in live}
        return record

    # ------------------------------------------------------------------ writing

    async def create(self, record: KernelRecord) -> KernelRecord:
        """Create the record (``AlreadyExists`` when the kernel id is taken)."""
        body = record_secret(record, self.namespace)
        created = await self._call(lambda: self._cluster.create("secrets", body, namespace=self.namespace),
                                   f"creating {_of(record)}")
        return self._wrote(record, body, "", created)

    async def replace(self, record: KernelRecord) -> KernelRecord:
        """Replace the record under its ``resource_version`` (``Conflict``: changed meanwhile; ``NotFound``: deleted)."""
        body = record_secret(record, self.namespace)
        written = await self._call(lambda: self._cluster.replace(
            "secrets", record_name(record.kernel_id), body, namespace=self.namespace), f"writing {_of(record)}")
        return self._wrote(record, body, record.resource_version, written)

    async def delete(self, kernel_id: str) -> None:
        """Delete the kernel's record (done when gone already)."""
        name = record_name(kernel_id)
        known = self.get(kernel_id)
        replaced = known.resource_version if known is not None else _version(self.informer.get(self.namespace, name))
        try:
            await self._call(lambda: self._cluster.delete("secrets", name, namespace=self.namespace),
                             f"deleting the record of kernel {kernel_id}")
        except NotFound:
            pass
        self._written[name] = _Written(self._chain(name, replaced), None)

    async def modify(self, kernel_id: str, change: Callable[[KernelRecord], KernelRecord | None]) -> KernelRecord | None:
        """Read, change and replace the record until no other replica came between (a bounded number of times).

        ``change`` gets the freshest record and returns the new one, or ``None`` when there is
        nothing to write (then the record as read is returned).  Returns ``None`` when the
        record is gone.  ``change`` may raise to give up.
        """
        for _ in range(MODIFY_ATTEMPTS):
            record = self.get(kernel_id)
            if record is None:
                return None
            updated = change(record)
            if updated is None:
                return record
            try:
                return await self.replace(updated)
            except NotFound:
                return None
            except Conflict:
                await self.settle(kernel_id, record.resource_version)
        raise RecordUnavailable(f"Kernel {kernel_id}: its record kept changing under this gateway; try again.")

    async def settle(self, kernel_id: str, stale_version: str) -> None:
        """After a conflict: wait (bounded) until the cache holds a version other than ``stale_version``."""
        try:
            await self.informer.wait_for(lambda obj: _version(obj) != stale_version, namespace=self.namespace,
                                         name=record_name(kernel_id), timeout=SETTLE_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("kernel %s: the record cache did not catch up within %gs", kernel_id, SETTLE_TIMEOUT)

    def _wrote(self, sent: KernelRecord, body: Obj, replaced: str, obj: Obj) -> KernelRecord:
        """Remember the record the server stored as ``obj`` for the write of ``sent`` (as ``body``), and return it.

        A Secret comes back as it was sent, with a new resourceVersion: the record is then ``sent`` at that
        version (a record reads back as written: ``tests/test_kernel_records.py``), without parsing it again.
        Only an answer whose data or labels differ (something between changed them) is parsed.
        """
        version = _version(obj)
        if (version and obj.get("data") == body["data"]
                and (obj.get("metadata") or {}).get("labels") == body["metadata"]["labels"]):
            record = replace(sent, resource_version=version)
        else:
            record = parse_record(obj)
        name = record_name(sent.kernel_id)
        self._written[name] = _Written(self._chain(name, replaced), record)
        # The watch event of this write carries the same version: the cache then need not parse it again.
        self._parsed[name] = (record.resource_version, record)
        return record

    def _chain(self, name: str, replaced: str) -> frozenset[str]:
        """The versions a write replacing ``replaced`` stands in for: with the earlier writes it built on.

        A real API server's watch may lag a create and a replace right after it (the cache
        still has no record): the replace's result must still be what :meth:`get` returns.
        """
        earlier = self._written.get(name)
        if earlier is not None and earlier.record is not None and earlier.record.resource_version == replaced:
            return earlier.replaced | {replaced}
        return frozenset({replaced})

    async def _call(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """One write, bounded and retried while the API is unavailable; API refusals propagate as they are."""
        backoff = Backoff(base=self._backoff_base.base, cap=self._backoff_base.cap)
        for attempt in range(1, CALL_ATTEMPTS + 1):
            try:
                async with asyncio.timeout(CALL_TIMEOUT):
                    return await call()
            except (ServerError, TooManyRequests, TimeoutError) as error:
                if attempt == CALL_ATTEMPTS:
                    raise RecordUnavailable(f"The Kubernetes API did not answer while {what}.") from error
                delay = backoff.fail()
                log.warning("%s failed (%s); trying again in %.1fs", what, error or type(error).__name__, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")


def _version(obj: Any) -> str:
    if not isinstance(obj, dict):
        return ""
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _of(record: KernelRecord) -> str:
    return f"the record of kernel {record.kernel_id}"
