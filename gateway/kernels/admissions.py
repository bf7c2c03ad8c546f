"""``EG_MAX_KERNELS`` and ``EG_MAX_KERNELS_PER_USER`` across every replica: admissions in one ConfigMap.

Every kernel a replica starts is admitted once its record is written: its id and username are
added to the ConfigMap ``kernelgate-admissions`` of the gateway's namespace (``data``: kernel
id -> username, a long one as its digest: :func:`user_key`), by replacing it under the
``resourceVersion`` read, after checking both limits against what it holds.  Two replicas
admitting at once cannot both pass a limit: one replace wins, the other gets a 409, reads again
and checks again (after a jittered back-off; a bounded number of times, then the start is
refused with 503).  The id is removed just before the kernel's record is deleted, by whichever
replica ends the kernel (the lease holder, for what a dead replica left), so an admission never
outlives its record unless that removal failed.

An id whose kernel has no record (that removal failed) is dropped by the next admission that
still sees it without a record :data:`ORPHAN_GRACE` seconds after first seeing it so.

A replica keeps the ConfigMap as its own last write (or read) left it, and its next admission or
release replaces that copy without reading first when the records cache suggests no other replica
wrote meanwhile (every kernel with a record, but the one at hand, is in the copy: another replica
records a kernel before admitting it), saving a request per start and per end.  The hint only
saves requests, it decides nothing: a copy out of date gets the replace's 409 and is read again
(one request more than reading first), and a refusal is only ever given from a copy just read.

Within a replica, admissions and releases are written one replace at a time, each carrying every
change asked for meanwhile (a group commit): starts at once in one replica never conflict with
each other, and 8 or 32 of them cost a few replaces instead of a round of 409s and back-offs each.
Changes in one write are decided in the order they were asked, so limits count each other.

A gateway with neither limit set keeps no admissions: no request per start or end, and no
ConfigMap growing with the kernels.  When a limit is set later (a new rollout), the kernels
started meanwhile have records but no admission: an admission counts every kernel whose record
is past its launch and that the ConfigMap lacks (:func:`replica_admissions`).  A kernel still
``launching`` without an admission is another replica's start in progress, which admits itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.aio import Backoff
from gateway.cluster.interface import (
    AlreadyExists,
    Cluster,
    ClusterError,
    Conflict,
    NotFound,
    Obj,
    ServerError,
    TooManyRequests,
)
from gateway.objects.labels import APP, APP_LABEL, COMPONENT_LABEL
from gateway.objects.record import Phase

from .errors import KernelConflict, KernelError, KernelLimitReached, shown
from .records import RecordStore
from .settings import KernelSettings

log = logging.getLogger("gateway.kernels.admissions")

ADMISSIONS_NAME = "kernelgate-admissions"
CALL_TIMEOUT = 10.0
ATTEMPTS = 10
"""Rounds of read, check, replace before a start is refused as too contended (503)."""
ORPHAN_GRACE = 60.0


class AdmissionsUnavailable(KernelError):
    """The admissions could not be read or written in time (too many starts at once, or the API is away)."""

    status = 503


class Admissions:
    """The cluster-wide admissions of one gateway namespace (see the module docstring).

    Built by the composition root; :meth:`ensure` is called at start, :meth:`admit` by each
    kernel start, :meth:`release` when a kernel's record is deleted.  ``recorded`` tells
    whether a kernel id has a record (from the records cache); ``recorded_ids``, the ids of
    every record there, lets a write start from the kept copy (without it, every write reads first).
    """

    def __init__(self, cluster: Cluster, namespace: str, recorded: Callable[[str], bool], *,
                 orphan_grace: float = ORPHAN_GRACE,
                 recorded_ids: Callable[[], Collection[str]] | None = None,
                 settled: Callable[[], Mapping[str, str]] | None = None,
                 keeps_ledger: bool = True) -> None:
        self._cluster = cluster
        self.namespace = namespace
        self._recorded = recorded
        self._recorded_ids = recorded_ids
        self._settled = settled
        """Kernel id -> :func:`user_key` of every kernel whose record is past its launch (counted when not admitted)."""
        self.keeps_ledger = keeps_ledger
        """``False`` when no limit is set: nothing is read, admitted or released."""
        self._orphan_grace = orphan_grace
        self._suspects: dict[str, float] = {}
        """Admitted ids seen without a record, and the ``loop.time()`` when first seen so."""
        self._known: Obj | None = None
        """The ConfigMap as this replica last wrote or read it (``None``: read it first); taken by one write."""
        self._asked: list[_Change] = []
        """Changes asked for and not yet taken by the writer."""
        self._writer: asyncio.Task[None] | None = None

    async def ensure(self) -> None:
        """Create the (empty) ConfigMap if absent, so that it exists before the first start (one ``get``)."""
        if not self.keeps_ledger:
            return
        try:
            await asyncio.wait_for(self._cluster.get("configmaps", ADMISSIONS_NAME, namespace=self.namespace),
                                   CALL_TIMEOUT)
        except NotFound:
            try:
                await asyncio.wait_for(self._cluster.create("configmaps", self._body({}, ""),
                                                            namespace=self.namespace), CALL_TIMEOUT)
            except AlreadyExists:
                pass

    async def admit(self, kernel_id: str, username: str, *, max_kernels: int | None,
                    max_per_user: int | None) -> None:
        """Admit the kernel, or raise :class:`KernelLimitReached` (403), :class:`KernelConflict` (409: the id
        is taken) or :class:`AdmissionsUnavailable` (503).  Without a ledger (no limit set), admits at once."""
        if self.keeps_ledger:
            await self._ask(_Change(kernel_id, username, max_kernels, max_per_user))

    async def release(self, kernel_id: str) -> None:
        """Remove the kernel's admission (its record is gone).  Failures are logged: a later admission drops it."""
        if self.keeps_ledger:
            await self._ask(_Change(kernel_id, None))

    async def _ask(self, change: _Change) -> None:
        change.done = asyncio.get_running_loop().create_future()
        self._asked.append(change)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_asked(), name="admissions: write")
        await change.done

    async def _write_asked(self) -> None:
        """The replica's one writer: applies what was asked, in batches, until nothing is left."""
        while self._asked:
            batch, self._asked = [c for c in self._asked if not c.done.cancelled()], []
            try:
                await self._apply(batch)
            except BaseException as error:  # a bug, or the loop's end: no caller waits forever
                for change in batch:
                    if not change.done.done():
                        change.done.set_exception(
                            error if isinstance(error, Exception) else AdmissionsUnavailable("the gateway is stopping"))
                if not isinstance(error, Exception):
                    raise

    async def _apply(self, batch: list[_Change]) -> None:
        """Read (or take the kept copy), decide each change in order, replace once; again on a 409."""
        backoff = Backoff(base=0.05, cap=1.0)
        pending = batch
        for _ in range(ATTEMPTS):
            known = self._take_known({c.kernel_id for c in pending})
            try:
                current = known if known is not None else await self._read(create=any(c.admits for c in pending))
            except NotFound:  # only releases, and no ConfigMap: nothing to remove
                _settle(pending)
                return
            except (ServerError, TooManyRequests, asyncio.TimeoutError) as error:
                log.warning("reading the admissions: %s", error or type(error).__name__)
                await asyncio.sleep(backoff.fail())
                continue
            except ClusterError as error:
                _settle(pending, error)
                return
            data = dict(current.get("data") or {})
            for orphan in self._orphans(data):
                log.warning("kernel %s was admitted but has no record; dropping its admission", orphan)
                del data[orphan]
            decided = _decide(pending, data, self._unadmitted(data, pending))
            kept = (known.get("data") or {}) if known is not None else None
            if kept is not None and any(refusal is not None or (not c.admits and c.kernel_id not in kept)
                                        for c, refusal in decided):
                continue  # the kept copy may be out of date: refuse, or find nothing to release, only on a fresh read
            for change, refusal in decided:
                if refusal is not None:
                    _settle([change], refusal)
            pending = [change for change, refusal in decided if refusal is None]
            if data == (current.get("data") or {}):
                self._known = current
                _settle(pending)
                return
            try:
                await self._write(current, data)
            except NotFound:
                continue  # the kept copy's ConfigMap was deleted: the next round reads (and so creates) it
            except (Conflict, AlreadyExists):
                if known is None:  # a kept copy out of date is no contention: read at once
                    await asyncio.sleep(backoff.fail())
                continue
            except (ServerError, TooManyRequests, asyncio.TimeoutError) as error:
                log.warning("writing the admissions: %s", error or type(error).__name__)
                await asyncio.sleep(backoff.fail())
                continue
            except ClusterError as error:
                _settle(pending, error)
                return
            for change in pending:
                if not change.admits:
                    self._suspects.pop(change.kernel_id, None)
            _settle(pending)
            return
        for change in pending:
            if not change.admits:
                log.warning("could not release the admission of kernel %s; a later start drops it", change.kernel_id)
        _settle([c for c in pending if not c.admits])
        _settle([c for c in pending if c.admits], AdmissionsUnavailable(
            "Kernel start refused: too many kernels are being started at once; try again."))

    # ------------------------------------------------------------------ the ConfigMap

    def _take_known(self, kernel_ids: Collection[str]) -> Obj | None:
        """The kept copy for one write about ``kernel_ids`` (``None``: read first); it is used at most once.

        Only when every other kernel with a record is in it: a kernel recorded (by another replica)
        but missing from the copy means the copy predates that replica's admission.
        """
        known, self._known = self._known, None
        if known is None or self._recorded_ids is None:
            return None
        data = known.get("data") or {}
        settled = self._settled() if self._settled is not None else {}
        if any(recorded not in data for recorded in self._recorded_ids()
               if recorded not in kernel_ids and recorded not in settled):
            return None
        return known

    def _unadmitted(self, data: Mapping[str, str], pending: list[_Change]) -> dict[str, str]:
        """Kernels past their launch that ``data`` lacks (started while no limit was set): counted, not written."""
        if self._settled is None:
            return {}
        asked = {change.kernel_id for change in pending}
        return {kernel_id: user for kernel_id, user in self._settled().items()
                if kernel_id not in data and kernel_id not in asked}

    async def _read(self, *, create: bool = True) -> Obj:
        try:
            return await asyncio.wait_for(
                self._cluster.get("configmaps", ADMISSIONS_NAME, namespace=self.namespace), CALL_TIMEOUT)
        except NotFound:
            if not create:
                raise
            return await asyncio.wait_for(
                self._cluster.create("configmaps", self._body({}, ""), namespace=self.namespace), CALL_TIMEOUT)

    async def _write(self, current: Obj, data: dict[str, str]) -> None:
        """Replace the ConfigMap read as ``current`` with ``data``; what the server answers is kept for the next write."""
        version = str((current.get("metadata") or {}).get("resourceVersion") or "")
        self._known = await asyncio.wait_for(self._cluster.replace(
            "configmaps", ADMISSIONS_NAME, self._body(data, version), namespace=self.namespace), CALL_TIMEOUT)

    def _body(self, data: dict[str, str], version: str) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": ADMISSIONS_NAME, "namespace": self.namespace,
                                    "labels": {APP_LABEL: APP, COMPONENT_LABEL: "enterprise-gateway"}}
        if version:
            metadata["resourceVersion"] = version
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}

    def _orphans(self, data: dict[str, str]) -> list[str]:
        """Admitted ids without a record for longer than the grace (first seen so now: remembered)."""
        now = asyncio.get_running_loop().time()
        orphans = []
        for kernel_id in data:
            if self._recorded(kernel_id):
                self._suspects.pop(kernel_id, None)
                continue
            first = self._suspects.setdefault(kernel_id, now)
            if now - first >= self._orphan_grace:
                orphans.append(kernel_id)
        for kernel_id in list(self._suspects):
            if kernel_id not in data:
                del self._suspects[kernel_id]
        return orphans


LONGEST_KEPT_USERNAME = 64
"""Bytes of a username the ledger keeps as it is; a longer one is kept as its digest."""


def user_key(username: str) -> str:
    """How the ledger writes ``username``: itself, or ``sha256:<hex>`` when longer than :data:`LONGEST_KEPT_USERNAME`.

    A client names its own ``KERNEL_USERNAME`` (up to 4096 characters): kept whole, a few hundred
    long ones would fill the ConfigMap past the 1 MiB an API server stores, and every start after
    would fail.  Each entry now takes at most some 110 bytes: the ledger holds some 9,000 kernels.
    """
    encoded = username.encode("utf-8")
    if len(encoded) <= LONGEST_KEPT_USERNAME:
        return username
    return "sha256:" + hashlib.sha256(encoded).hexdigest()


def _check_limits(data: Mapping[str, str], unadmitted: Mapping[str, str], username: str, max_kernels: int | None,
                  max_per_user: int | None) -> None:
    """Both limits, counting every admitted kernel (running or starting) on every replica (EG #855), and every
    kernel running without an admission."""
    total = len(data) + len(unadmitted)
    if max_kernels is not None and total >= max_kernels:
        raise KernelLimitReached(
            f"Kernel start refused: the gateway runs at most {max_kernels} kernels and has {total} running or starting."
        )
    if max_per_user is not None:
        key = user_key(username)
        mine = sum(1 for user in data.values() if user == key) + sum(
            1 for user in unadmitted.values() if user == key)
        if mine >= max_per_user:
            raise KernelLimitReached(
                f"Kernel start refused: user {shown(username)} may run at most {max_per_user} kernels "
                f"and has {mine} running or starting."
            )


@dataclass
class _Change:
    """One admission (``username`` set) or release asked of the writer; ``done`` is resolved when decided."""

    kernel_id: str
    username: str | None
    max_kernels: int | None = None
    max_per_user: int | None = None
    done: asyncio.Future[None] = field(init=False, repr=False)

    @property
    def admits(self) -> bool:
        return self.username is not None


def _decide(changes: list[_Change], data: dict[str, str],
            unadmitted: Mapping[str, str]) -> list[tuple[_Change, KernelError | None]]:
    """Apply ``changes`` to ``data`` in order; each with its refusal, or ``None`` when applied."""
    decided: list[tuple[_Change, KernelError | None]] = []
    for change in changes:
        if change.username is None:
            data.pop(change.kernel_id, None)
            decided.append((change, None))
            continue
        try:
            if change.kernel_id in data:
                raise KernelConflict(f"Kernel {change.kernel_id} already exists.")
            _check_limits(data, unadmitted, change.username, change.max_kernels, change.max_per_user)
        except (KernelConflict, KernelLimitReached) as refusal:
            decided.append((change, refusal))
            continue
        data[change.kernel_id] = user_key(change.username)
        decided.append((change, None))
    return decided


def _settle(changes: list[_Change], error: BaseException | None = None) -> None:
    """Resolve the callers waiting on ``changes`` (with ``error``, for an admission; a release only logs it)."""
    for change in changes:
        if change.done.done():
            continue
        if error is not None and not change.admits:
            log.error("could not release the admission of kernel %s: %s", change.kernel_id, error)
            error_for_it: BaseException | None = None
        else:
            error_for_it = error
        if error_for_it is None:
            change.done.set_result(None)
        else:
            change.done.set_exception(error_for_it)


def replica_admissions(cluster: Cluster, namespace: str, records: RecordStore, settings: KernelSettings) -> Admissions:
    """A replica's admissions over its records cache, keeping a ledger only when a limit is set.

    Called by the composition root (``gateway.app``) once per gateway process.
    """
    def settled() -> dict[str, str]:
        return {record.kernel_id: user_key(record.username) for record in records.all()
                if record.phase is not Phase.LAUNCHING}

    return Admissions(cluster, namespace, lambda kernel_id: records.get(kernel_id) is not None,
                      orphan_grace=settings.leftover_grace, recorded_ids=records.kernel_ids, settled=settled,
                      keeps_ledger=settings.max_kernels is not None or settings.max_kernels_per_user is not None)
