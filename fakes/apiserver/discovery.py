"""Discovery documents of the simulated API server, built from ``gateway.cluster.resources``.

Served by :mod:`fakes.apiserver.server` at ``/version``, ``/api``, ``/api/v1``, ``/apis``
and ``/apis/<group>/<version>``.  These are the legacy (unaggregated) documents;
clients that ask for aggregated discovery (``as=APIGroupDiscoveryList``, kubectl
since 1.30) fall back to them when the response's content type is plain
``application/json`` (client-go ``discovery/discovery_client.go``, which picks the
parser by the returned ``Content-Type``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.cluster.resources import RESOURCES, ResourceType

GIT_VERSION = "v1.32.0"
"""The Kubernetes version we claim: recent enough that current clients accept it."""

# Subresources whose kind, group or verbs differ from their parent's
# (as `kubectl get --raw /api/v1` shows on a real cluster).
_SUBRESOURCES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    # name: (kind, group, version, verbs); "" group/version means "the parent's"
    "status": ("", "", "", ("get", "patch", "update")),
    "log": ("Pod", "", "", ("get",)),
    "binding": ("Binding", "", "", ("create",)),
    "eviction": ("Eviction", "policy", "v1", ("create",)),
    "token": ("TokenRequest", "authentication.k8s.io", "v1", ("create",)),
    "finalize": ("", "", "", ("update",)),
    "scale": ("Scale", "autoscaling", "v1", ("get", "patch", "update")),
}


def version() -> dict[str, Any]:
    """``/version``: what ``kubectl version`` prints as the server version."""
    return {
        "major": "1",
        "minor": GIT_VERSION.split(".")[1],
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T17:59:15Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def core_versions(server_address: str) -> dict[str, Any]:
    """``/api``: the versions of the core (legacy) group."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


# Create-only reviews served by path (``fakes.apiserver.server``), not through the cluster
# interface: a real 1.32 server lists them in discovery too
# (pkg/registry/authentication/rest/storage_authentication.go, selfsubjectreviews in v1
# since 1.28; pkg/registry/authorization/rest/storage_authorization.go).  Clients that
# create a review from a manifest (kubectl before ``auth whoami`` existed:
# ``kubectl create -f review.yaml``) find its resource here.  tokenreviews and
# localsubjectaccessreviews are not served, so not listed.
_REVIEWS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("authentication.k8s.io", "v1"): [
        {"name": "selfsubjectreviews", "singularName": "selfsubjectreview", "namespaced": False,
         "kind": "SelfSubjectReview", "verbs": ["create"]},
    ],
    ("authorization.k8s.io", "v1"): [
        {"name": "selfsubjectrulesreviews", "singularName": "selfsubjectrulesreview", "namespaced": False,
         "kind": "SelfSubjectRulesReview", "verbs": ["create"]},
    ],
}


def group_versions() -> dict[tuple[str, str], list[ResourceType]]:
    """Every served (group, version) and its resources, core group first.

    A group-version holding only reviews (``_REVIEWS``) maps to an empty list.
    """
    out: dict[tuple[str, str], list[ResourceType]] = {}
    for r in RESOURCES.values():
        out.setdefault((r.group, r.version), []).append(r)
    for gv in _REVIEWS:
        out.setdefault(gv, [])
    order = sorted(out, key=lambda gv: (gv[0] != "", gv[0], gv[1]))
    return {gv: out[gv] for gv in order}


def _group_entry(group: str, versions: Iterable[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def group_list() -> dict[str, Any]:
    """``/apis``: the named groups (not the core group)."""
    versions: dict[str, list[str]] = {}
    for group, ver in group_versions():
        if group:
            versions.setdefault(group, []).append(ver)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(g, vs) for g, vs in versions.items()],
    }


def group(name: str) -> dict[str, Any] | None:
    """``/apis/<group>``: one named group, or ``None`` when we do not serve it."""
    versions = [v for g, v in group_versions() if g == name]
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(name, versions)}


def _resource_entries(r: ResourceType) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "name": r.plural,
        "singularName": r.singular or r.kind.lower(),
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    entries = [entry]
    for sub in r.subresources:
        kind, sub_group, sub_version, verbs = _SUBRESOURCES.get(sub, ("", "", "", ("get",)))
        sub_entry: dict[str, Any] = {
            "name": f"{r.plural}/{sub}",
            "singularName": "",
            "namespaced": r.namespaced,
            "kind": kind or r.kind,
            "verbs": list(verbs),
        }
        if sub_group:
            sub_entry["group"], sub_entry["version"] = sub_group, sub_version
        entries.append(sub_entry)
    return entries


def resource_list(group_name: str, version_name: str) -> dict[str, Any] | None:
    """``/api/v1`` or ``/apis/<group>/<version>``: the resources served there, or ``None``."""
    resources = group_versions().get((group_name, version_name))
    if resources is None:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group_name}/{version_name}" if group_name else version_name,
        "resources": [e for r in resources for e in _resource_entries(r)]
        + _REVIEWS.get((group_name, version_name), []),
    }
