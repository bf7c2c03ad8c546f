"""The Kubernetes resource types kernelgate knows, by plural name.

Used by the real adapter (to build request paths), by the simulated cluster
(to store and validate objects) and by the simulated API server (to serve
discovery).  Facts here are those a real API server publishes in its
discovery documents (``kubectl api-resources -o wide``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.cluster.interface import NotFound

TERMINAL_POD_PHASES = frozenset({"Succeeded", "Failed"})
"""Pod phases a pod never leaves (``k8s.io/api/core/v1`` ``PodSucceeded``/``PodFailed``)."""


@dataclass(frozen=True)
class ResourceType:
    """One served resource: ``pods`` in group ``""`` version ``v1``, and so on."""

    plural: str
    kind: str
    group: str
    version: str
    namespaced: bool
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    singular: str = field(default="")

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, ``<group>/<version>`` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def group_resource(self) -> str:
        """``pods`` or ``rolebindings.rbac.authorization.k8s.io``, as error messages name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The REST path of the collection, or of one object and its subresource."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


_ALL = "all"
_RBAC = "rbac.authorization.k8s.io"
_READ_CREATE = ("create",)

RESOURCES: dict[str, ResourceType] = {
    r.plural: r
    for r in (
        ResourceType(
            "namespaces", "Namespace", "", "v1", False,
            verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
            short_names=("ns",), subresources=("status", "finalize"),
        ),
        ResourceType(
            "pods", "Pod", "", "v1", True, short_names=("po",), categories=(_ALL,),
            subresources=("status", "log", "binding", "eviction"),
        ),
        ResourceType("serviceaccounts", "ServiceAccount", "", "v1", True, short_names=("sa",), subresources=("token",)),
        ResourceType(
            "services", "Service", "", "v1", True,
            verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
            short_names=("svc",), categories=(_ALL,), subresources=("status",),
        ),
        ResourceType("configmaps", "ConfigMap", "", "v1", True, short_names=("cm",)),
        ResourceType("secrets", "Secret", "", "v1", True),
        ResourceType("events", "Event", "", "v1", True, short_names=("ev",)),
        ResourceType("persistentvolumeclaims", "PersistentVolumeClaim", "", "v1", True, short_names=("pvc",), subresources=("status",)),
        ResourceType("persistentvolumes", "PersistentVolume", "", "v1", False, short_names=("pv",), subresources=("status",)),
        ResourceType("nodes", "Node", "", "v1", False, short_names=("no",), subresources=("status",)),
        ResourceType("leases", "Lease", "coordination.k8s.io", "v1", True),
        ResourceType("poddisruptionbudgets", "PodDisruptionBudget", "policy", "v1", True, short_names=("pdb",),
                     subresources=("status",)),
        ResourceType(
            "deployments", "Deployment", "apps", "v1", True, short_names=("deploy",),
            categories=(_ALL,), subresources=("status", "scale"),
        ),
        ResourceType(
            "replicasets", "ReplicaSet", "apps", "v1", True, short_names=("rs",),
            categories=(_ALL,), subresources=("status", "scale"),
        ),
        ResourceType("endpoints", "Endpoints", "", "v1", True, short_names=("ep",)),
        ResourceType("endpointslices", "EndpointSlice", "discovery.k8s.io", "v1", True),
        ResourceType("roles", "Role", _RBAC, "v1", True),
        ResourceType("clusterroles", "ClusterRole", _RBAC, "v1", False),
        ResourceType("rolebindings", "RoleBinding", _RBAC, "v1", True),
        ResourceType("clusterrolebindings", "ClusterRoleBinding", _RBAC, "v1", False),
        ResourceType(
            "selfsubjectaccessreviews", "SelfSubjectAccessReview", "authorization.k8s.io", "v1", False,
            verbs=_READ_CREATE,
        ),
        ResourceType(
            "subjectaccessreviews", "SubjectAccessReview", "authorization.k8s.io", "v1", False,
            verbs=_READ_CREATE,
        ),
    )
}


def resource_type(plural: str) -> ResourceType:
    """Look up a resource by plural name; :class:`NotFound` for one we do not serve."""
    try:
        return RESOURCES[plural]
    except KeyError:
        raise NotFound(f"the server could not find the requested resource ({plural})") from None


def for_kind(api_version: str, kind: str) -> ResourceType:
    """The resource serving objects of ``apiVersion``/``kind`` (used by ``kubectl create -f`` paths)."""
    for r in RESOURCES.values():
        if r.kind == kind and r.api_version == api_version:
            return r
    raise NotFound(f'no matches for kind "{kind}" in version "{api_version}"')
