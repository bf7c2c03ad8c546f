"""What a request path names: the resource, namespace, object and subresource.

:mod:`fakes.apiserver.server` parses every ``/api`` and ``/apis`` path with
:func:`parse` before it authenticates or dispatches, the way the real server's
``RequestInfoFactory`` does (``k8s.io/apiserver/pkg/endpoints/request/requestinfo.go``).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.cluster.resources import RESOURCES, ResourceType

# Subresources of a namespace: /api/v1/namespaces/<name>/status is the namespace's
# status, not the resource "status" in namespace <name> (requestinfo.go namespaceSubresources).
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}


@dataclass(frozen=True)
class ResourcePath:
    """A path to a resource collection, one object, or one object's subresource."""

    resource: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def is_collection(self) -> bool:
        return self.name is None


@dataclass(frozen=True)
class DiscoveryPath:
    """A path to a discovery document: ``/api``, ``/api/v1``, ``/apis``, ``/apis/<g>``, ``/apis/<g>/<v>``."""

    group: str | None  # None: the group list itself (/api or /apis)
    version: str | None
    legacy: bool  # /api rather than /apis


def parse(path: str) -> ResourcePath | DiscoveryPath | None:
    """The resource or discovery document ``path`` names, or ``None`` when we serve nothing there."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        return None
    legacy = parts[0] == "api"
    if legacy:
        if len(parts) == 1:
            return DiscoveryPath(None, None, legacy=True)
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) <= 2:
            return DiscoveryPath(parts[1] if len(parts) == 2 else None, None, legacy=False)
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return DiscoveryPath(group, version, legacy=legacy)

    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    resource = RESOURCES.get(rest[0])
    if resource is None or resource.group != group or resource.version != version:
        return None
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    if subresource is not None and subresource not in resource.subresources:
        return None
    if namespace is not None and not resource.namespaced:
        return None
    if namespace is None and resource.namespaced and name is not None:
        return None  # a namespaced object is only reachable through its namespace
    if resource.plural == "namespaces" and name is not None:
        namespace = None
    return ResourcePath(resource, namespace, name, subresource)
