"""Whether a pod fits the node: the scheduler's node selector and required node affinity checks.

Called by :class:`fakes.node.kubelet.NodeAgent`, which schedules pods onto itself as
kube-scheduler would onto the one node of the simulated cluster.
"""

from __future__ import annotations

from typing import Any

from gateway.cluster.interface import Obj


def _requirement_matches(req: dict[str, Any], labels: dict[str, str]) -> bool:
    """One ``nodeSelectorRequirement`` (k8s.io/component-helpers/scheduling/corev1/nodeaffinity)."""
    key, op, values = req.get("key", ""), req.get("operator", ""), req.get("values") or []
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and values:
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def fits_node(pod: Obj, labels: dict[str, str]) -> bool:
    """Whether ``pod``'s nodeSelector and required node affinity accept a node with ``labels``."""
    spec = pod.get("spec", {})
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    # Terms are ORed, the expressions of a term ANDed; a term with no expressions matches nothing.
    return any(
        term.get("matchExpressions") and all(_requirement_matches(r, labels) for r in term["matchExpressions"])
        for term in terms
    )


def unschedulable_message(nodes: int = 1) -> str:
    """kube-scheduler's FailedScheduling text for pods no node's labels accept (one node here)."""
    return (f"0/{nodes} nodes are available: {nodes} node(s) didn't match Pod's node affinity/selector. "
            f"preemption: 0/{nodes} nodes are available: {nodes} Preemption is not helpful for scheduling.")
