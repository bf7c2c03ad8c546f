"""A :class:`~gateway.cluster.interface.Cluster` that reports each error the Kubernetes API answers.

The composition root wraps the gateway's cluster connection in a :class:`MeteredCluster`, so
every part of the gateway (informers, provisioner, records, lease) is counted without a line
of its own: each :class:`~gateway.cluster.interface.ClusterError` raised by a call, or by a
watch stream as it is read, is reported as ``(verb, resource, status)`` (verbs as RBAC names
them: ``replace`` is ``update``, a pod's binding ``create`` on ``pods/binding``) before it
propagates unchanged.  Anything else of the wrapped connection is reached through it as is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from gateway.cluster.interface import Cluster, ClusterError, Obj, WatchEvent

ErrorReport = Callable[[str, str, int], None]
"""``(verb, resource, status)`` of one error answered."""


class MeteredCluster:
    """``inner`` with every API error reported to ``on_error`` (see the module docstring)."""

    def __init__(self, inner: Cluster, on_error: ErrorReport) -> None:
        self.inner = inner
        self._on_error = on_error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _call(self, verb: str, resource: str, call: Any) -> Any:
        try:
            return await call
        except ClusterError as error:
            self._on_error(verb, resource, error.status)
            raise

    async def create(self, resource: str, body: Mapping[str, Any], *, namespace: str | None = None) -> Obj:
        return await self._call("create", resource, self.inner.create(resource, body, namespace=namespace))

    async def get(self, resource: str, name: str, *, namespace: str | None = None) -> Obj:
        return await self._call("get", resource, self.inner.get(resource, name, namespace=namespace))

    async def list(self, resource: str, **options: Any) -> Obj:
        return await self._call("list", resource, self.inner.list(resource, **options))

    async def replace(self, resource: str, name: str, body: Mapping[str, Any], **options: Any) -> Obj:
        return await self._call("update", resource, self.inner.replace(resource, name, body, **options))

    async def patch(self, resource: str, name: str, patch: Any, **options: Any) -> Obj:
        return await self._call("patch", resource, self.inner.patch(resource, name, patch, **options))

    async def delete(self, resource: str, name: str, **options: Any) -> Obj:
        return await self._call("delete", resource, self.inner.delete(resource, name, **options))

    def watch(self, resource: str, **options: Any) -> AsyncIterator[WatchEvent]:
        return _MeteredWatch(self.inner.watch(resource, **options), resource, self._on_error)

    async def bind_pod(self, name: str, namespace: str, node_name: str) -> None:
        await self._call("create", "pods/binding", self.inner.bind_pod(name, namespace, node_name))

    async def read_pod_log(self, name: str, namespace: str, **options: Any) -> str:
        return await self._call("get", "pods/log", self.inner.read_pod_log(name, namespace, **options))

    async def create_token(self, service_account: str, namespace: str, **options: Any) -> str:
        return await self._call("create", "serviceaccounts/token",
                                self.inner.create_token(service_account, namespace, **options))

    async def can_i(self, verb: str, resource: str, **options: Any) -> bool:
        return await self._call("create", "selfsubjectaccessreviews", self.inner.can_i(verb, resource, **options))

    async def close(self) -> None:
        await self.inner.close()


class _MeteredWatch:
    """A watch stream whose errors (raised as it is read) are reported; ``aclose`` reaches the stream."""

    def __init__(self, stream: AsyncIterator[WatchEvent], resource: str, on_error: ErrorReport) -> None:
        self._stream = stream
        self._resource = resource
        self._on_error = on_error

    def __aiter__(self) -> _MeteredWatch:
        return self

    async def __anext__(self) -> WatchEvent:
        try:
            return await self._stream.__anext__()
        except ClusterError as error:
            self._on_error("watch", self._resource, error.status)
            raise

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()
