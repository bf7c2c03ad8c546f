"""The real cluster adapter: :class:`~gateway.cluster.interface.Cluster` over HTTPS to the API server.

:class:`KubernetesCluster` answers the interface: it builds each call's path (from
:mod:`gateway.cluster.resources`), query and body, and sends it through its
:class:`~gateway.cluster.kubernetes.transport.Transport` on the event loop; a watch is a
:class:`~gateway.cluster.kubernetes.watch.WatchStream` read as its events arrive.  Both send
with the current :class:`~gateway.cluster.kubernetes.credentials.Credentials`, re-read from disk
as they rotate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import Any

from kubernetes.client import ApiClient

from gateway.cluster.interface import BadRequest, Obj, PatchType, Propagation, ServerError
from gateway.cluster.resources import resource_type
from gateway.jsoncodec import decode

from .credentials import DEFAULT_REFRESH_INTERVAL, Credentials, CredentialSource, InClusterSource, KubeconfigSource
from .endpoint import JSON, Endpoint
from .transport import Transport
from .watch import UNBOUNDED_WATCH_SILENCE, WATCH_READ_GRACE, LiveWatches, WatchStream

DEFAULT_WORKERS = 16
"""Requests in flight at once (watches aside); more wait for one to finish (the loop stays free)."""

DEFAULT_TIMEOUT = (5.0, 30.0)
"""(connect, read) seconds for every non-watch request."""


class KubernetesCluster:
    """A :class:`~gateway.cluster.interface.Cluster` on a real API server (or the simulated one).

    Built by the composition root with :meth:`from_kubeconfig` (outside a pod,
    or against the simulated cluster) or :meth:`in_cluster` (the gateway's own
    service account), whose credential files are re-read when they change
    (every ``refresh_interval`` seconds, and at once after a 401 or a failed TLS
    handshake); ``KubernetesCluster(api_client)`` takes a configured client's
    server, TLS settings and token as they are.  Either way at most
    ``max_workers`` requests are in flight at once (watches aside), and
    :meth:`close` closes every connection.
    """

    def __init__(
        self,
        client: ApiClient | Credentials,
        *,
        max_workers: int = DEFAULT_WORKERS,
        request_timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        # A configured client is only read (blocking: its CA and certificate files): tests and tools.
        self._credentials = client if isinstance(client, Credentials) else Credentials(Endpoint(client.configuration))
        self._timeout = request_timeout
        self._transport = Transport(self._credentials, max_in_flight=max_workers, connect_timeout=request_timeout[0])
        self._watches = LiveWatches()

    @classmethod
    def from_kubeconfig(
        cls, path: str | None = None, context: str | None = None, *, max_workers: int = DEFAULT_WORKERS, **kwargs: Any
    ) -> KubernetesCluster:
        """Connect as a kubeconfig file says (``$KUBECONFIG``'s first file or ``~/.kube/config`` by default).

        Reads the file: call it at startup, off the event loop.
        """
        return cls.from_source(KubeconfigSource(path, context), max_workers=max_workers, **kwargs)

    @classmethod
    def in_cluster(cls, *, max_workers: int = DEFAULT_WORKERS, **kwargs: Any) -> KubernetesCluster:
        """Connect as the pod's service account (its projected token and CA are re-read as they rotate)."""
        return cls.from_source(InClusterSource(), max_workers=max_workers, **kwargs)

    @classmethod
    def from_source(
        cls, source: CredentialSource, *, max_workers: int = DEFAULT_WORKERS,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL, **kwargs: Any
    ) -> KubernetesCluster:
        """Connect with the credentials ``source`` reads (blocking: call at startup, off the event loop)."""
        credentials = Credentials.load(source, refresh_interval=refresh_interval)
        return cls(credentials, max_workers=max_workers, **kwargs)

    @property
    def host(self) -> str:
        """The API server's URL."""
        return self._credentials.endpoint.url

    @property
    def credentials(self) -> Credentials:
        """Where requests are sent and with what, and where the credentials are re-read from."""
        return self._credentials

    @property
    def open_connections(self) -> int:
        """Connections to the API server open now (idle ones included)."""
        return self._transport.open_connections

    # ------------------------------------------------------------------ requests

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = JSON,
    ) -> bytes:
        return await self._transport.request(method, path, query=query, body=body, content_type=content_type,
                                             read_timeout=self._timeout[1])

    async def _json(self, method: str, path: str, **kwargs: Any) -> Obj:
        data = await self._request(method, path, **kwargs)
        try:
            obj = decode(data)
        except ValueError as exc:
            raise ServerError(f"the API server sent a body that is not JSON: {data[:200]!r}") from exc
        if not isinstance(obj, dict):
            raise ServerError(f"the API server sent JSON that is not an object: {data[:200]!r}")
        return obj

    # ------------------------------------------------------------------ the interface

    async def create(self, resource: str, body: Mapping[str, Any], *, namespace: str | None = None) -> Obj:
        return await self._json("POST", resource_type(resource).path(namespace), body=dict(body))

    async def get(self, resource: str, name: str, *, namespace: str | None = None) -> Obj:
        return await self._json("GET", resource_type(resource).path(namespace, name))

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
        query = {"labelSelector": label_selector or None, "fieldSelector": field_selector or None,
                 "limit": limit or None, "continue": continue_token or None}
        return await self._json("GET", resource_type(resource).path(namespace), query=query)

    async def replace(
        self,
        resource: str,
        name: str,
        body: Mapping[str, Any],
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> Obj:
        return await self._json("PUT", resource_type(resource).path(namespace, name, subresource), body=dict(body))

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
        if PatchType(patch_type) is PatchType.JSON and not isinstance(patch, list):
            # The client would silently resend a non-list JSON patch as a strategic merge patch.
            raise BadRequest("a JSON patch is a list of operations")
        return await self._json(
            "PATCH",
            resource_type(resource).path(namespace, name, subresource),
            body=patch,
            content_type=PatchType(patch_type).value,
        )

    async def delete(
        self,
        resource: str,
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        propagation_policy: Propagation | None = None,
    ) -> Obj:
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy is not None:
            options["propagationPolicy"] = Propagation(propagation_policy).value
        return await self._json("DELETE", resource_type(resource).path(namespace, name), body=options)

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
    ) -> WatchStream:
        query: dict[str, Any] = {
            "watch": "1",
            "labelSelector": label_selector or None,
            "fieldSelector": field_selector or None,
            "resourceVersion": resource_version or None,
            "allowWatchBookmarks": "true" if allow_bookmarks else None,
        }
        silence = UNBOUNDED_WATCH_SILENCE
        if timeout_seconds is not None:
            query["timeoutSeconds"] = max(1, math.ceil(timeout_seconds))
            silence = query["timeoutSeconds"] + WATCH_READ_GRACE
        send = partial(self._transport.send, "GET", resource_type(resource).path(namespace), query=query,
                       read_timeout=silence)
        return WatchStream(send, self._watches)

    async def bind_pod(self, name: str, namespace: str, node_name: str) -> None:
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        await self._json("POST", resource_type("pods").path(namespace, name, "binding"), body=binding)

    async def read_pod_log(
        self, name: str, namespace: str, *, container: str | None = None, tail_lines: int | None = None
    ) -> str:
        query = {"container": container, "tailLines": tail_lines}
        data = await self._request("GET", resource_type("pods").path(namespace, name, "log"), query=query)
        return data.decode("utf-8", errors="replace")

    async def create_token(self, service_account: str, namespace: str, *, expiration_seconds: int = 3600) -> str:
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": expiration_seconds},
        }
        path = resource_type("serviceaccounts").path(namespace, service_account, "token")
        answer = await self._json("POST", path, body=request)
        token = (answer.get("status") or {}).get("token")
        if not token:
            raise ServerError("the TokenRequest answer carries no token")
        return str(token)

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
        attributes = {
            "verb": verb,
            "resource": resource,
            "group": group,
            "subresource": subresource,
            "name": name,
            "namespace": namespace or "",
        }
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {k: v for k, v in attributes.items() if v}},
        }
        answer = await self._json("POST", resource_type("selfsubjectaccessreviews").path(), body=review)
        return bool((answer.get("status") or {}).get("allowed"))

    async def version(self) -> Obj:
        """The server's build information (``GET /version``): a cheap check that it answers."""
        return await self._json("GET", "/version")

    async def close(self) -> None:
        """End open watches and close every connection; later calls fail with ServiceUnavailable."""
        self._watches.close()
        self._transport.close()
