"""What the controllers read off objects: owners, selectors, pod readiness and availability, times.

Pure functions over wire-format objects, after client-go and pkg/api/v1/pod
(``IsPodReady``, ``IsPodAvailable``), pkg/controller (``FilterActivePods``) and
apimachinery's ``LabelSelectorAsSelector``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from gateway.cluster.interface import Obj

TERMINAL_PHASES = ("Succeeded", "Failed")


def now() -> str:
    """The current time as the API writes it (RFC 3339, seconds)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(stamp: str | None) -> float | None:
    """Epoch seconds of an API timestamp, or ``None``."""
    if not stamp:
        return None
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def meta(obj: Obj) -> dict[str, Any]:
    return obj.get("metadata") or {}


def key_of(obj: Obj) -> tuple[str, str]:
    return str(meta(obj).get("namespace") or ""), str(meta(obj).get("name") or "")


def controller_of(obj: Obj) -> dict[str, Any] | None:
    """The owner reference with ``controller: true`` (``metav1.GetControllerOf``)."""
    for ref in meta(obj).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def owned_by(obj: Obj, owner: Obj) -> bool:
    """Whether ``owner`` is ``obj``'s controller."""
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == meta(owner).get("uid")


def controller_reference(owner: Obj, api_version: str, kind: str) -> dict[str, Any]:
    """The owner reference a controller puts on what it creates (``metav1.NewControllerRef``)."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta(owner)["name"],
        "uid": meta(owner)["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Whether a ``LabelSelector`` (``matchLabels``, ``matchExpressions``) selects ``labels``.

    An empty selector selects everything, as ``LabelSelectorAsSelector`` makes it; a missing one nothing.
    """
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def map_selects(selector: Mapping[str, str] | None, labels: Mapping[str, str] | None) -> bool:
    """Whether a Service's plain map selector selects ``labels`` (an empty map selects nothing here:
    a Service without a selector has its endpoints managed by hand)."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def pod_active(pod: Obj) -> bool:
    """Counted by its owner: not terminal and not being deleted (``FilterActivePods``)."""
    status = pod.get("status") or {}
    return status.get("phase") not in TERMINAL_PHASES and not meta(pod).get("deletionTimestamp")


def ready_condition(pod: Obj) -> dict[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond
    return None


def pod_ready(pod: Obj) -> bool:
    """The pod's ``Ready`` condition is ``True`` (``IsPodReady``)."""
    cond = ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def available_in(pod: Obj, min_ready_seconds: int, at: float) -> float | None:
    """Seconds until ``pod`` counts as available (0: it is); ``None`` while it is not ready (``IsPodAvailable``)."""
    if not pod_ready(pod):
        return None
    if min_ready_seconds <= 0:
        return 0.0
    since = parse_time((ready_condition(pod) or {}).get("lastTransitionTime"))
    if since is None:
        return 0.0
    return max(0.0, since + min_ready_seconds - at)


def pod_scheduled(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))
