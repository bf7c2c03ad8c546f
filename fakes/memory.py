"""The in-memory cluster: ``gateway.cluster.interface.Cluster`` over a :class:`~fakes.state.store.Store`.

The gateway's tests and the embedded default open one ``MemoryCluster`` per
identity over a shared store.  Each call does what the API server's handler
chain does before the registry: injected faults first (their latency is
awaited), then RBAC authorization for the identity (``fakes.auth.rbac``), then the
store operation.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fakes.auth import rbac, reviews
from fakes.auth.escalation import check_rbac_write
from fakes.auth.identity import ADMIN, UserInfo
from fakes.state.lifecycle import Preconditions
from fakes.state.selectors import parse_field_selector
from fakes.state.store import Store
from fakes.state.watching import Watch
from gateway.cluster.interface import BadRequest, Forbidden, Obj, PatchType, Propagation, WatchEvent
from gateway.cluster.resources import ResourceType, resource_type


class MemoryCluster:
    """A :class:`gateway.cluster.interface.Cluster` acting as ``user`` on ``store``.

    Must be used from the event loop that owns the store.
    """

    def __init__(self, store: Store, user: UserInfo = ADMIN) -> None:
        self.store = store
        self.user = user
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()
        self._closed = False

    # ---------------------------------------------------------------- the handler chain

    async def _admit(self, verb: str, rt: ResourceType, namespace: str | None, name: str = "",
                     subresource: str = "") -> None:
        """Faults, then authorization; raises what the API server would answer."""
        resource = rt.plural + (f"/{subresource}" if subresource else "")
        await self.store.faults.take(verb, resource, namespace).apply()
        request = rbac.server_view(rbac.Request(verb=verb, resource=rt.plural, api_group=rt.group,
                                                namespace=(namespace or "") if rt.namespaced else "", name=name,
                                                subresource=subresource))
        decision = rbac.authorize(self.user, request, self.store)
        if not decision.allowed:
            raise Forbidden(rbac.forbidden_message(self.user, request, decision.reason), kind=rt.plural,
                            name=name or None, group=rt.group)

    @staticmethod
    def _namespace(rt: ResourceType, namespace: str | None) -> str | None:
        return namespace if rt.namespaced else None

    # ---------------------------------------------------------------- the interface

    async def create(self, resource: str, body: Mapping[str, Any], *, namespace: str | None = None) -> Obj:
        rt = resource_type(resource)
        if rt.namespaced and namespace is None:
            namespace = (body.get("metadata") or {}).get("namespace")
        ns = self._namespace(rt, namespace)
        if rt.plural in ("selfsubjectaccessreviews", "subjectaccessreviews"):
            # Answered, never stored (pkg/registry/authorization/*/rest.go), as the API server does.
            return await reviews.answer(self, self.user, self.store, rt.plural, dict(body), kind=rt.kind,
                                        api_version=rt.api_version)
        await self._admit("create", rt, ns)
        check_rbac_write(self.user, rt.plural, body, ns, self.store)
        return self.store.create(rt, dict(body), ns)

    async def get(self, resource: str, name: str, *, namespace: str | None = None) -> Obj:
        rt = resource_type(resource)
        ns = self._namespace(rt, namespace)
        await self._admit("get", rt, ns, name)
        return self.store.get(rt, ns, name)

    async def list(self, resource: str, *, namespace: str | None = None, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int | None = None,
                   continue_token: str | None = None) -> Obj:
        rt = resource_type(resource)
        ns = self._namespace(rt, namespace)
        await self._admit("list", rt, ns, _selected_name(rt, field_selector))
        return self.store.list(rt, ns, label_selector, field_selector, limit=limit, continue_token=continue_token)

    async def replace(self, resource: str, name: str, body: Mapping[str, Any], *, namespace: str | None = None,
                      subresource: str | None = None) -> Obj:
        rt = resource_type(resource)
        ns = self._namespace(rt, namespace)
        await self._admit("update", rt, ns, name, subresource or "")
        if rt.group == "rbac.authorization.k8s.io" and not subresource:
            stored = self.store.objects(rt, ns) if rt.namespaced else self.store.objects(rt)
            old = next((o for o in stored if o["metadata"]["name"] == name), None)  # a PUT may create RBAC objects
            check_rbac_write(self.user, rt.plural, body, ns, self.store, old=old)
        return self.store.replace(rt, ns, name, dict(body), subresource)

    async def patch(self, resource: str, name: str, patch: Any, *, namespace: str | None = None,
                    patch_type: PatchType = PatchType.MERGE, subresource: str | None = None) -> Obj:
        rt = resource_type(resource)
        ns = self._namespace(rt, namespace)
        await self._admit("patch", rt, ns, name, subresource or "")
        return self.store.patch(rt, ns, name, patch, patch_type, subresource)

    async def delete(self, resource: str, name: str, *, namespace: str | None = None,
                     grace_period_seconds: int | None = None, propagation_policy: Propagation | None = None,
                     preconditions: Preconditions | None = None) -> Obj:
        """The interface's delete; ``preconditions`` (not in the interface: the API server's front passes a
        request's ``DeleteOptions.preconditions``) must hold or the delete is a 409."""
        rt = resource_type(resource)
        ns = self._namespace(rt, namespace)
        await self._admit("delete", rt, ns, name)
        return self.store.delete(rt, ns, name, grace_period_seconds, propagation_policy, preconditions)

    def watch(self, resource: str, *, namespace: str | None = None, label_selector: str | None = None,
              field_selector: str | None = None, resource_version: str | None = None,
              timeout_seconds: float | None = None, allow_bookmarks: bool = False) -> AsyncIterator[WatchEvent]:
        """Faults, authorization and :class:`Gone` take effect when iteration starts, as a request would."""
        return self._watch(resource, namespace, label_selector, field_selector, resource_version, timeout_seconds,
                           allow_bookmarks)

    async def _watch(self, resource: str, namespace: str | None, label_selector: str | None,
                     field_selector: str | None, resource_version: str | None, timeout_seconds: float | None,
                     allow_bookmarks: bool) -> AsyncIterator[WatchEvent]:
        rt = resource_type(resource)
        ns = self._namespace(rt, namespace)
        await self._admit("watch", rt, ns, _selected_name(rt, field_selector))
        stream = self.store.watch(rt, ns, label_selector, field_selector, resource_version,
                                  allow_bookmarks=allow_bookmarks, timeout_seconds=timeout_seconds)
        if self._closed:
            stream.close()
        self._watches.add(stream)
        try:
            async for event in stream:
                yield event
        finally:
            stream.close()

    async def bind_pod(self, name: str, namespace: str, node_name: str) -> None:
        rt = resource_type("pods")
        await self._admit("create", rt, namespace, name, "binding")
        self.store.bind_pod(namespace, name, node_name)

    async def read_pod_log(self, name: str, namespace: str, *, container: str | None = None,
                           tail_lines: int | None = None) -> str:
        rt = resource_type("pods")
        await self._admit("get", rt, namespace, name, "log")
        return self.store.read_log(namespace, name, container, tail_lines)

    async def create_token(self, service_account: str, namespace: str, *, expiration_seconds: int = 3600) -> str:
        rt = resource_type("serviceaccounts")
        await self._admit("create", rt, namespace, service_account, "token")
        token, _expires = self.store.create_token(namespace, service_account, expiration_seconds)
        return token

    async def authorize(self, verb: str, resource: str, name: str, *, namespace: str | None = None,
                        subresource: str = "") -> None:
        """Faults, then RBAC, for a request the store does not answer itself (``pods/exec``, ``pods/attach``,
        ``pods/portforward``, which the API server streams to the pod's node); raises :class:`Forbidden`."""
        rt = resource_type(resource)
        await self._admit(verb, rt, self._namespace(rt, namespace), name, subresource)

    async def can_i(self, verb: str, resource: str, *, namespace: str | None = None, group: str = "",
                    subresource: str = "", name: str = "") -> bool:
        """SelfSubjectAccessReview: any authenticated caller may ask about itself."""
        rt = resource_type("selfsubjectaccessreviews")
        await self.store.faults.take("create", rt.plural, None).apply()
        request = rbac.Request(verb=verb, resource=resource, api_group=group, namespace=namespace or "",
                               name=name, subresource=subresource)
        return rbac.authorize(self.user, request, self.store).allowed

    async def close(self) -> None:
        """End this cluster's open watches; the store itself lives on."""
        self._closed = True
        for stream in list(self._watches):
            stream.end()


def _selected_name(rt: ResourceType, field_selector: str | None) -> str:
    """The name a list/watch pins with ``metadata.name=X``: the server authorizes it as a request on X
    (``k8s.io/apiserver/pkg/endpoints/request/requestinfo.go``)."""
    try:
        return parse_field_selector(field_selector, rt.plural).single_name() or ""
    except BadRequest:
        return ""  # the store answers the malformed selector after authorization
