"""The abstract cluster interface the gateway is written against.

Everything above this layer (provisioner, kernels, http) talks to Kubernetes
only through a :class:`Cluster`.  Two implementations exist:

* ``gateway.cluster.kubernetes.KubernetesCluster`` over the official
  ``kubernetes`` client (a real cluster, or the simulated API server);
* ``fakes.memory.MemoryCluster``, the in-memory simulated cluster, which
  authorizes every call for the identity it was opened with.

Objects are Kubernetes wire-format dicts (exactly the JSON the API server
sends), so a fake stores what a real cluster would.  Resources are named by
their plural (``"pods"``, ``"rolebindings"``); ``gateway.cluster.resources``
maps each to its group, version, kind and scope.

Errors are our own (below), each raised ``from`` the library error that caused
it.  HTTP status codes never leave the adapter; callers branch on the class.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Obj = dict[str, Any]
"""A Kubernetes object in wire format (``apiVersion``, ``kind``, ``metadata``, ...)."""


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Cause:
    """One field-level cause of an error, as in ``Status.details.causes``."""

    reason: str
    message: str
    field: str = ""


class ClusterError(Exception):
    """Base of every error a :class:`Cluster` raises.

    ``reason`` is the ``Status.reason`` a real API server would send for it,
    ``status`` the HTTP status it answers with (``Status.code``); ``kind``/``name`` identify the object when known.
    """

    status: int = 500
    reason: str = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        name: str | None = None,
        group: str = "",
        causes: Sequence[Cause] = (),
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.name = name
        self.group = group
        self.causes = tuple(causes)
        self.retry_after_seconds = retry_after_seconds


class BadRequest(ClusterError):
    """400: the request itself is malformed (bad JSON, bad selector, bad patch)."""

    status, reason = 400, "BadRequest"


class Unauthorized(ClusterError):
    """401: no valid credentials."""

    status, reason = 401, "Unauthorized"


class Forbidden(ClusterError):
    """403: authenticated, but RBAC (or admission, e.g. a terminating namespace) refuses."""

    status, reason = 403, "Forbidden"


class NotFound(ClusterError):
    """404: the object, its namespace, or the resource type does not exist."""

    status, reason = 404, "NotFound"


class MethodNotAllowed(ClusterError):
    """405: the resource does not support this verb."""

    status, reason = 405, "MethodNotAllowed"


class Conflict(ClusterError):
    """409: a write lost an optimistic-concurrency race (stale resourceVersion)."""

    status, reason = 409, "Conflict"


class AlreadyExists(Conflict):
    """409: create of a name that is taken."""

    reason = "AlreadyExists"


class Gone(ClusterError):
    """410: a watch or list asked for a resourceVersion older than the server keeps."""

    status, reason = 410, "Expired"


class UnsupportedMediaType(ClusterError):
    """415: a patch or body in a content type the resource does not take."""

    status, reason = 415, "UnsupportedMediaType"


class Invalid(ClusterError):
    """422: the object fails validation; ``causes`` name the fields."""

    status, reason = 422, "Invalid"


class TooManyRequests(ClusterError):
    """429: the server asks the client to back off (``retry_after_seconds``)."""

    status, reason = 429, "TooManyRequests"


class ServerError(ClusterError):
    """5xx, or any answer the adapter could not make sense of."""

    status, reason = 500, "InternalError"


class ServiceUnavailable(ServerError):
    """503: the server (or a fault injected into the fake) is unavailable."""

    status, reason = 503, "ServiceUnavailable"


class UntrustedServer(ServiceUnavailable):
    """No answer: the TLS handshake with the API server failed (its certificate is not signed by the CA the
    client trusts, after the cluster's CA changed, say).  Like a rejected token, waiting does not repair it."""


class Timeout(ServerError):
    """504: the server or the client gave up waiting."""

    status, reason = 504, "Timeout"


# --------------------------------------------------------------------------- requests


class PatchType(str, enum.Enum):
    """The patch formats the API server accepts, by their content types."""

    MERGE = "application/merge-patch+json"
    JSON = "application/json-patch+json"
    STRATEGIC = "application/strategic-merge-patch+json"
    APPLY = "application/apply-patch+yaml"
    """Server-side apply: the API server also needs a ``fieldManager`` for it, which this interface does
    not carry; a real server refuses it without one (422)."""


class Propagation(str, enum.Enum):
    """``DeleteOptions.propagationPolicy``: what happens to an object's dependents."""

    BACKGROUND = "Background"
    FOREGROUND = "Foreground"
    ORPHAN = "Orphan"


@dataclass(frozen=True)
class WatchEvent:
    """One event of a watch stream.

    ``type`` is ``ADDED``, ``MODIFIED``, ``DELETED`` or ``BOOKMARK`` (a bookmark's
    object carries only ``kind``, ``apiVersion`` and ``metadata.resourceVersion``).
    """

    type: str
    object: Obj = field(default_factory=dict)

    @property
    def resource_version(self) -> str:
        return str(self.object.get("metadata", {}).get("resourceVersion", ""))


# --------------------------------------------------------------------------- the interface


@runtime_checkable
class Cluster(Protocol):
    """An authenticated connection to one Kubernetes cluster.

    Every method is a coroutine (or returns an async iterator) and never blocks
    the event loop.  ``namespace`` is required for namespaced resources and
    must be ``None`` for cluster-scoped ones; ``list`` and ``watch`` with
    ``namespace=None`` on a namespaced resource span all namespaces.
    """

    async def create(self, resource: str, body: Mapping[str, Any], *, namespace: str | None = None) -> Obj:
        """Create ``body``; return the stored object (with uid, resourceVersion...)."""
        ...

    async def get(self, resource: str, name: str, *, namespace: str | None = None) -> Obj:
        """Read one object. Raises :class:`NotFound`."""
        ...

    async def list(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> Obj:
        """List objects: a ``<Kind>List`` whose ``metadata.resourceVersion`` is the
        collection's version, the one to start a watch from.

        With ``limit``, one page of at most that many; ``metadata.continue``, when set, is the
        ``continue_token`` of the next page, which keeps the first page's version (:class:`Gone`
        once the server no longer keeps it; :class:`BadRequest` for a token it cannot read)."""
        ...

    async def replace(
        self, resource: str, name: str, body: Mapping[str, Any], *, namespace: str | None = None, subresource: str | None = None
    ) -> Obj:
        """PUT: replace the object (or its ``status`` subresource).  When ``body``
        carries ``metadata.resourceVersion`` it must be current, else :class:`Conflict`."""
        ...

    async def patch(
        self,
        resource: str,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: PatchType = PatchType.MERGE,
        subresource: str | None = None,
    ) -> Obj:
        """PATCH the object, or its ``status`` subresource."""
        ...

    async def delete(
        self,
        resource: str,
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        propagation_policy: Propagation | None = None,
    ) -> Obj:
        """Delete an object.  Returns what the server returns: the object itself
        when deletion is graceful or pending finalizers (it then carries
        ``metadata.deletionTimestamp``), else a ``Status`` of success."""
        ...

    def watch(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: float | None = None,
        allow_bookmarks: bool = False,
    ) -> AsyncIterator[WatchEvent]:
        """Stream the changes after ``resource_version`` (``None``: synthetic ADDED
        events for what exists now, then changes).  Raises :class:`Gone` when the
        version is older than the server keeps: relist, then watch again.  The
        stream ends after ``timeout_seconds`` or when the server closes it;
        ``aclose()`` stops it early."""
        ...

    async def bind_pod(self, name: str, namespace: str, node_name: str) -> None:
        """Create the ``pods/binding`` subresource: schedule the pod onto a node."""
        ...

    async def read_pod_log(
        self, name: str, namespace: str, *, container: str | None = None, tail_lines: int | None = None
    ) -> str:
        """Read a container's log (``pods/log``)."""
        ...

    async def create_token(
        self, service_account: str, namespace: str, *, expiration_seconds: int = 3600
    ) -> str:
        """TokenRequest (``serviceaccounts/token``): a bearer token for the account."""
        ...

    async def can_i(
        self,
        verb: str,
        resource: str,
        *,
        namespace: str | None = None,
        group: str = "",
        subresource: str = "",
        name: str = "",
    ) -> bool:
        """SelfSubjectAccessReview: may the caller do this?"""
        ...

    async def close(self) -> None:
        """Release connections and threads.  Open watches end."""
        ...
