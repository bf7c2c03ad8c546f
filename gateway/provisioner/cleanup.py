"""What one launch created, and removing exactly that when the launch fails.

The provisioner creates every object of a launch through :meth:`Created.create`,
which records it; when the launch fails, :meth:`Created.undo` deletes the
records newest first.  A create whose outcome is unknown (the API timed out or
failed midway) is recorded as uncertain: at clean-up such an object is deleted
only if it exists and carries this kernel's ``kernel_id`` label, so a failed
launch never deletes an object someone else made.  When the API refuses a
deletion, the launch's error says so (:attr:`LaunchError.left_behind
<gateway.provisioner.errors.LaunchError.left_behind>`): the kernel service then
keeps the kernel's record, through which the lease holder deletes the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.cluster.interface import Cluster, ClusterError, NotFound, Obj
from gateway.objects.labels import KERNEL_ID_LABEL

from .apicalls import CLEANUP_CALL_TIMEOUT, api, delete_quietly
from .errors import ClusterUnavailable, LaunchTimeout

log = logging.getLogger("gateway.provisioner")


@dataclass(frozen=True)
class _Record:
    resource: str
    namespace: str | None
    name: str
    certain: bool


@dataclass
class Created:
    """The objects one launch of kernel ``kernel_id`` created, in order."""

    kernel_id: str
    records: list[_Record] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.records)

    async def create(
        self, cluster: Cluster, resource: str, body: Mapping[str, Any], *, namespace: str | None, deadline: float
    ) -> Obj:
        """Create ``body`` (through :func:`~gateway.provisioner.apicalls.api`) and record it."""
        name = str(body["metadata"]["name"])
        where = f" in namespace {namespace}" if namespace else ""
        try:
            obj = await api(cluster.create(resource, body, namespace=namespace),
                            what=f"creating {body.get('kind', resource)} {name}{where}", deadline=deadline)
        except (LaunchTimeout, ClusterUnavailable):
            self.records.append(_Record(resource, namespace, name, certain=False))
            raise
        self.records.append(_Record(resource, namespace, name, certain=True))
        return obj

    async def undo(self, cluster: Cluster) -> bool:
        """Delete everything recorded, newest first (pods at once, without a grace period).

        Returns whether nothing recorded is left: ``False`` when a deletion failed, or when it could
        not be told whether an uncertain object is this kernel's.  Each failure is logged; the rest
        is deleted all the same.
        """
        complete = True
        for record in reversed(self.records):
            ours = record.certain or await self._is_ours(cluster, record)
            if ours is False:
                continue
            if ours is None:
                complete = False
                continue
            grace = 0 if record.resource == "pods" else None
            deleted = await delete_quietly(cluster, record.resource, record.name, namespace=record.namespace,
                                           grace_period_seconds=grace)
            complete = complete and deleted
        self.records.clear()
        return complete

    async def _is_ours(self, cluster: Cluster, record: _Record) -> bool | None:
        """Whether the uncertain object exists labelled for this kernel; ``None`` when it cannot be read."""
        try:
            obj = await asyncio.wait_for(cluster.get(record.resource, record.name, namespace=record.namespace),
                                         CLEANUP_CALL_TIMEOUT)
        except NotFound:
            return False
        except (ClusterError, asyncio.TimeoutError) as exc:
            log.error("cannot tell whether %s %s was created for kernel %s (%s); leaving it",
                      record.resource, record.name, self.kernel_id, exc or exc.__class__.__name__)
            return None
        return ((obj.get("metadata") or {}).get("labels") or {}).get(KERNEL_ID_LABEL) == self.kernel_id
