"""The arithmetic of a Deployment's rollout: how far each ReplicaSet may be scaled in one step.

Pure functions after pkg/controller/deployment/rolling.go and util/deployment_util.go
(``ResolveFenceposts``, ``NewRSNewReplicas``, ``cleanupUnhealthyReplicas``,
``scaleDownOldReplicaSetsForRollingUpdate``), used by the Deployment controller
(:mod:`fakes.controllers.deployment`) each time it syncs a Deployment.  A RollingUpdate never
has more than ``replicas + maxSurge`` pods, nor fewer than ``replicas - maxUnavailable``
available ones while it scales old ReplicaSets down.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fakes.controllers.objects import meta, parse_time
from gateway.cluster.interface import Obj

ROLLING_UPDATE = "RollingUpdate"
RECREATE = "Recreate"


def spec_replicas(obj: Obj) -> int:
    """``spec.replicas`` of a Deployment or ReplicaSet (1 when unset, as the API defaults it)."""
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_count(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def strategy_type(deployment: Obj) -> str:
    return ((deployment.get("spec") or {}).get("strategy") or {}).get("type") or ROLLING_UPDATE


def scaled_value(value: Any, total: int, *, round_up: bool) -> int:
    """An ``IntOrString`` (``2`` or ``"25%"``) as a number of pods out of ``total`` (``GetScaledValueFromIntOrPercent``)."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text.endswith("%"):
        return int(text)
    share = total * int(text[:-1]) / 100
    return math.ceil(share) if round_up else math.floor(share)


def fenceposts(deployment: Obj) -> tuple[int, int]:
    """``(maxSurge, maxUnavailable)`` in pods: surge rounds up, unavailability down; both 0 means 1 unavailable."""
    replicas = spec_replicas(deployment)
    rolling = ((deployment.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    surge = scaled_value(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(deployment: Obj) -> int:
    """How many pods may be unavailable (``MaxUnavailable``): none outside a rolling update."""
    replicas = spec_replicas(deployment)
    if strategy_type(deployment) != ROLLING_UPDATE or replicas == 0:
        return 0
    return min(fenceposts(deployment)[1], replicas)


def max_total(deployment: Obj) -> int:
    """The most pods the rollout may run at once (the ``max-replicas`` annotation)."""
    surge = fenceposts(deployment)[0] if strategy_type(deployment) == ROLLING_UPDATE else 0
    return spec_replicas(deployment) + surge


def new_replicas(deployment: Obj, replicasets: Sequence[Obj], new_rs: Obj | None) -> int:
    """How many replicas the new ReplicaSet may have now (``NewRSNewReplicas``)."""
    wanted = spec_replicas(deployment)
    if strategy_type(deployment) != ROLLING_UPDATE:
        return wanted
    current_new = spec_replicas(new_rs) if new_rs is not None else 0
    current_total = sum(spec_replicas(rs) for rs in replicasets)
    limit = max_total(deployment)
    if current_total >= limit:
        return current_new
    return current_new + min(limit - current_total, max(0, wanted - current_new))


def old_scale_down(deployment: Obj, old: Sequence[Obj], new_rs: Obj | None) -> dict[str, int]:
    """New replica counts for old ReplicaSets (by name) in one rolling-update step (``reconcileOldReplicaSets``).

    First the old ReplicaSets' unavailable pods go, as far as the budget allows; then available
    ones, as long as ``replicas - maxUnavailable`` pods stay available.
    """
    counts = {meta(rs)["name"]: spec_replicas(rs) for rs in old}
    if not any(counts.values()):
        return {}
    everyone = [*old, *([new_rs] if new_rs is not None else [])]
    min_available = spec_replicas(deployment) - max_unavailable(deployment)
    new_unavailable = (spec_replicas(new_rs) - status_count(new_rs, "availableReplicas")) if new_rs is not None else 0
    budget = sum(spec_replicas(rs) for rs in everyone) - min_available - new_unavailable
    if budget <= 0:
        return {}
    oldest_first = sorted(old, key=_created)
    cleaned = 0
    for rs in oldest_first:  # cleanupUnhealthyReplicas
        if cleaned >= budget:
            break
        name, available = meta(rs)["name"], status_count(rs, "availableReplicas")
        if counts[name] == 0 or counts[name] == available:
            continue
        cut = min(budget - cleaned, counts[name] - available)
        counts[name] -= cut
        cleaned += cut
    available_total = sum(status_count(rs, "availableReplicas") for rs in everyone)
    allowed = available_total - min_available  # scaleDownOldReplicaSetsForRollingUpdate
    scaled = 0
    for rs in oldest_first:
        if scaled >= allowed:
            break
        name = meta(rs)["name"]
        if counts[name] == 0:
            continue
        cut = min(counts[name], allowed - scaled)
        counts[name] -= cut
        scaled += cut
    return {name: count for name, count in counts.items() if count != spec_replicas(_named(old, name))}


def _named(replicasets: Sequence[Obj], name: str) -> Obj:
    return next(rs for rs in replicasets if meta(rs)["name"] == name)


def _created(rs: Obj) -> tuple[float, str]:
    return parse_time(meta(rs).get("creationTimestamp")) or 0.0, meta(rs).get("name", "")
