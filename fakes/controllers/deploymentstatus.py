"""A Deployment's status from its ReplicaSets, and its ``Available`` and ``Progressing`` conditions.

After pkg/controller/deployment/sync.go (``calculateStatus``, ``syncRolloutStatus``) and
progress.go: the counts sum the ReplicaSets' statuses; ``Available`` says whether at least
``replicas - maxUnavailable`` pods are available; ``Progressing`` says a new ReplicaSet was
created or found, that the rollout progresses, that it completed, or that it made no progress
for ``progressDeadlineSeconds``.  ``kubectl rollout status`` reads exactly these fields.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from fakes.controllers.objects import meta, now, parse_time
from fakes.controllers.rollout import max_unavailable, spec_replicas, status_count
from gateway.cluster.interface import Obj

AVAILABLE, PROGRESSING = "Available", "Progressing"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"


def condition(status: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def set_condition(status: dict[str, Any], ctype: str, value: str, reason: str, message: str,
                  *, keep_transition: bool = True) -> None:
    """``SetDeploymentCondition``: a condition with the same status and reason is left as it is;
    otherwise it is replaced, keeping ``lastTransitionTime`` when only the reason changed."""
    conditions = status.setdefault("conditions", [])
    old = condition(status, ctype)
    if old is not None and old.get("status") == value and old.get("reason") == reason:
        return
    stamp = now()
    new = {"type": ctype, "status": value, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
           "reason": reason, "message": message}
    if old is not None:
        if keep_transition and old.get("status") == value:
            new["lastTransitionTime"] = old.get("lastTransitionTime", stamp)
        conditions.remove(old)
    conditions.append(new)


def calculate_status(deployment: Obj, replicasets: Sequence[Obj], new_rs: Obj | None) -> dict[str, Any]:
    """The counts and the ``Available`` condition (``calculateStatus``); zero counts are omitted, as the API does."""
    old_status = deployment.get("status") or {}
    available = sum(status_count(rs, "availableReplicas") for rs in replicasets)
    counts = {
        "observedGeneration": meta(deployment).get("generation"),
        "replicas": sum(status_count(rs, "replicas") for rs in replicasets),
        "updatedReplicas": status_count(new_rs, "replicas") if new_rs is not None else 0,
        "readyReplicas": sum(status_count(rs, "readyReplicas") for rs in replicasets),
        "availableReplicas": available,
        "unavailableReplicas": max(0, sum(spec_replicas(rs) for rs in replicasets) - available),
        "collisionCount": old_status.get("collisionCount"),
    }
    status: dict[str, Any] = {name: value for name, value in counts.items() if value}
    status["conditions"] = copy.deepcopy(old_status.get("conditions") or [])
    if available >= spec_replicas(deployment) - max_unavailable(deployment):
        set_condition(status, AVAILABLE, "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    else:
        set_condition(status, AVAILABLE, "False", "MinimumReplicasUnavailable",
                      "Deployment does not have minimum availability.")
    return status


def complete(deployment: Obj, status: dict[str, Any]) -> bool:
    """Every replica updated and available, no old one left (``DeploymentComplete``)."""
    wanted = spec_replicas(deployment)
    return (status.get("updatedReplicas", 0) == wanted and status.get("replicas", 0) == wanted
            and status.get("availableReplicas", 0) == wanted
            and status.get("observedGeneration", 0) >= (meta(deployment).get("generation") or 0))


def _progressing(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether anything moved since the last status (``DeploymentProgressing``)."""
    def old_pods(s: dict[str, Any]) -> int:
        return s.get("replicas", 0) - s.get("updatedReplicas", 0)
    return (new.get("updatedReplicas", 0) > old.get("updatedReplicas", 0)
            or new.get("readyReplicas", 0) > old.get("readyReplicas", 0)
            or old_pods(old) > old_pods(new)
            or new.get("availableReplicas", 0) > old.get("availableReplicas", 0))


def progress(deployment: Obj, status: dict[str, Any], new_rs: Obj | None, at: float) -> float | None:
    """Update ``Progressing`` in ``status`` (``syncRolloutStatus``); return in how many seconds the
    progress deadline passes, when the controller must look again."""
    deadline = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
    if deadline is None:
        return None
    name = meta(new_rs)["name"] if new_rs is not None else ""
    current = condition(status, PROGRESSING)
    if complete(deployment, status) and new_rs is not None:
        set_condition(status, PROGRESSING, "True", NEW_RS_AVAILABLE, f'ReplicaSet "{name}" has successfully progressed.')
        return None
    if _progressing(deployment.get("status") or {}, status):
        message = f'ReplicaSet "{name}" is progressing.' if new_rs is not None else \
            f'Deployment "{meta(deployment)["name"]}" is progressing.'
        stamp = now()
        fresh = {"type": PROGRESSING, "status": "True", "lastUpdateTime": stamp, "lastTransitionTime": stamp,
                 "reason": RS_UPDATED, "message": message}
        if current is not None:
            if current.get("status") == "True":
                fresh["lastTransitionTime"] = current.get("lastTransitionTime", stamp)
            status["conditions"].remove(current)
        status["conditions"].append(fresh)
        return float(deadline)
    if current is None or current.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT):
        return None
    since = parse_time(current.get("lastUpdateTime")) or at
    left = since + float(deadline) - at
    if left <= 0:
        set_condition(status, PROGRESSING, "False", TIMED_OUT, f'ReplicaSet "{name}" has timed out progressing.')
        return None
    return left
