"""The objects of ``manifests/enterprise-gateway.yaml``, read for the simulated cluster and the tests.

The gateway's permissions are written once, in the manifests operators apply:
the ``enterprise-gateway-controller`` and ``kernel-controller`` ClusterRoles, and the
``enterprise-gateway`` Role in the gateway's own namespace.
The embedded simulated cluster (``fakes.gateway_rbac``) and the tests that run
the gateway as its service account take their rules from here, so what is
tested is what is deployed.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

from gateway.shipped import shipped_root

MANIFEST = shipped_root() / "manifests" / "enterprise-gateway.yaml"
"""The single-file deployment: this checkout's, else the installed copy (``gateway.shipped``)."""
GATEWAY_CLUSTER_ROLE = "enterprise-gateway-controller"
KERNEL_CLUSTER_ROLE = "kernel-controller"
GATEWAY_ROLE = "enterprise-gateway"
"""The Role the gateway holds in its own namespace (kernel records, the duties lease, the admissions ledger)."""


@functools.lru_cache(maxsize=8)
def _parsed(path: Path) -> tuple[dict[str, Any], ...]:
    with path.open(encoding="utf-8") as stream:
        return tuple(doc for doc in yaml.safe_load_all(stream) if doc)


def manifest_objects(path: Path = MANIFEST) -> list[dict[str, Any]]:
    """Every object of a multi-document manifest, in file order (fresh copies: callers may change them)."""
    return copy.deepcopy(list(_parsed(Path(path))))


def manifest_object(kind: str, name: str, path: Path = MANIFEST) -> dict[str, Any]:
    """The one object of ``kind`` named ``name``; ``KeyError`` when the manifest has none."""
    for obj in manifest_objects(path):
        if obj.get("kind") == kind and (obj.get("metadata") or {}).get("name") == name:
            return obj
    raise KeyError(f"{path} has no {kind} {name}")


def cluster_role_rules(name: str, path: Path = MANIFEST) -> list[dict[str, Any]]:
    """The rules of ClusterRole ``name`` as the manifest grants them."""
    return list(manifest_object("ClusterRole", name, path).get("rules") or [])


def gateway_rules(path: Path = MANIFEST) -> list[dict[str, Any]]:
    """What the gateway's service account may do: ``enterprise-gateway-controller``."""
    return cluster_role_rules(GATEWAY_CLUSTER_ROLE, path)


def kernel_rules(path: Path = MANIFEST) -> list[dict[str, Any]]:
    """What a kernel's service account may do in its namespace: ``kernel-controller``."""
    return cluster_role_rules(KERNEL_CLUSTER_ROLE, path)


def namespace_rules(path: Path = MANIFEST) -> list[dict[str, Any]]:
    """What the gateway's service account may do in the gateway's own namespace: the ``enterprise-gateway`` Role."""
    return list(manifest_object("Role", GATEWAY_ROLE, path).get("rules") or [])
