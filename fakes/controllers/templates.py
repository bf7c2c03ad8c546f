"""A Deployment's pod templates as ReplicaSets carry them: the ``pod-template-hash`` and revisions.

After pkg/controller/deployment/util/deployment_util.go and pkg/controller/controller_utils.go
``ComputeHash``: the hash of the template (and the Deployment's ``collisionCount``) is FNV-32a,
written in decimal and spelled with the alphabet of generated names
(``rand.SafeEncodeString``), so a ReplicaSet is named ``<deployment>-<hash>`` and its pods
carry the label ``pod-template-hash=<hash>``.  Our hash input is the template's canonical
JSON, so names differ from a real cluster's for the same template; the rules are the same.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from gateway.cluster.interface import Obj

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand: no vowels, no look-alikes


def fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def template_hash(template: Obj, collision_count: int | None = None) -> str:
    """The ``pod-template-hash`` of ``template`` (``ComputeHash``)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += collision_count.to_bytes(4, "little")
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in str(fnv32a(data)))


def without_hash(template: Obj) -> Obj:
    """``template`` without the ``pod-template-hash`` label, for comparing templates (``EqualIgnoreHash``)."""
    out = copy.deepcopy(template)
    labels = (out.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(HASH_LABEL, None)
        if not labels:
            out["metadata"].pop("labels")
    if out.get("metadata") == {}:
        out.pop("metadata")
    return out


def same_template(a: Obj, b: Obj) -> bool:
    return without_hash(a) == without_hash(b)


def with_hash(template: Obj, hash_value: str) -> Obj:
    """A copy of ``template`` whose labels carry ``pod-template-hash``."""
    out = copy.deepcopy(template)
    out.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = hash_value
    return out


def selector_with_hash(selector: dict[str, Any], hash_value: str) -> dict[str, Any]:
    """The Deployment's selector narrowed to one ReplicaSet's pods."""
    out = copy.deepcopy(selector)
    out.setdefault("matchLabels", {})[HASH_LABEL] = hash_value
    return out


def revision_of(rs: Obj) -> int:
    """The ReplicaSet's ``deployment.kubernetes.io/revision`` (0 when absent or unreadable)."""
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0
