"""A ``coordination.k8s.io/v1`` Lease as the gateway replicas use it: who holds the duties, until when.

Pure reading and building, no I/O; :class:`gateway.cluster.lease.LeaseElector` does the calls.
The rules are client-go's leader election (``tools/leaderelection/resourcelock/leaselock.go``):
a Lease is held by ``spec.holderIdentity`` until ``spec.renewTime`` plus
``spec.leaseDurationSeconds``; a replica takes it over only after that, by replacing the Lease
under the ``resourceVersion`` it read (so of two replicas trying at once one wins), counting a
change of holder in ``spec.leaseTransitions``; a holder that stops clears ``holderIdentity``
so that the next replica need not wait for the expiry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

LEASE_LABELS = {"app": "enterprise-gateway", "component": "enterprise-gateway"}
"""The gateway's own labels (as its Deployment's), on the Lease it creates."""
LEASE_API_VERSION = "coordination.k8s.io/v1"
MICRO_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""``metav1.MicroTime`` on the wire."""


@dataclass(frozen=True)
class LeaseState:
    """What a Lease says: its holder (``""``: nobody), since and until when."""

    holder: str = ""
    duration_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    resource_version: str = ""

    def expires_at(self) -> datetime | None:
        """When the holder's claim runs out (``None`` when nobody holds it)."""
        if not self.holder or self.renew_time is None:
            return None
        return self.renew_time + timedelta(seconds=self.duration_seconds)

    def held_by_another(self, identity: str, now: datetime) -> bool:
        """Whether a replica other than ``identity`` holds the Lease at ``now`` (so ``identity`` must wait)."""
        expiry = self.expires_at()
        return bool(self.holder) and self.holder != identity and expiry is not None and now < expiry


def parse_lease(obj: Mapping[str, Any]) -> LeaseState:
    """The state of a Lease object; missing or malformed fields read as nobody holding it."""
    spec = _mapping(obj.get("spec"))
    meta = _mapping(obj.get("metadata"))
    holder = spec.get("holderIdentity")
    duration = spec.get("leaseDurationSeconds")
    transitions = spec.get("leaseTransitions")
    return LeaseState(
        holder=holder if isinstance(holder, str) else "",
        duration_seconds=duration if isinstance(duration, int) and not isinstance(duration, bool) else 0,
        acquire_time=_parse_time(spec.get("acquireTime")),
        renew_time=_parse_time(spec.get("renewTime")),
        transitions=transitions if isinstance(transitions, int) and not isinstance(transitions, bool) else 0,
        resource_version=str(meta.get("resourceVersion") or ""),
    )


def held_lease(name: str, namespace: str, current: LeaseState | None, *, identity: str, duration: float,
               now: datetime) -> dict[str, Any]:
    """The Lease after ``identity`` acquires or renews it (``current``: the state read; ``None``: absent).

    A renewal by its holder keeps ``acquireTime`` and the transition count; a takeover sets both anew.
    """
    ours = current is not None and current.holder == identity
    acquired = current.acquire_time if ours and current is not None and current.acquire_time else now
    transitions = current.transitions if current is not None else 0
    if current is not None and not ours:
        transitions += 1
    return _lease(name, namespace, current, holder=identity, duration_seconds=max(1, math.ceil(duration)),
                  acquire_time=acquired, renew_time=now, transitions=transitions)


def released_lease(name: str, namespace: str, current: LeaseState, *, now: datetime) -> dict[str, Any]:
    """The Lease after its holder lets go: no holder, so the next replica takes it at once (client-go's release)."""
    return _lease(name, namespace, current, holder="", duration_seconds=1, acquire_time=now, renew_time=now,
                  transitions=current.transitions)


def _lease(name: str, namespace: str, current: LeaseState | None, *, holder: str, duration_seconds: int,
           acquire_time: datetime, renew_time: datetime, transitions: int) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace,
                                "labels": dict(LEASE_LABELS)}
    if current is not None and current.resource_version:
        metadata["resourceVersion"] = current.resource_version
    return {
        "apiVersion": LEASE_API_VERSION, "kind": "Lease", "metadata": metadata,
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration_seconds,
                 "acquireTime": _format_time(acquire_time), "renewTime": _format_time(renew_time),
                 "leaseTransitions": transitions},
    }


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(MICRO_TIME_FORMAT)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    for form in (MICRO_TIME_FORMAT, "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, form).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None
