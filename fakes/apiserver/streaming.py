"""``pods/exec``, ``pods/attach``, ``pods/portforward`` and ``pods/log?follow=true``: streams to the pod's node.

A real API server authorizes these requests, finds the pod's node, and proxies the upgraded
connection to that node's kubelet (``pkg/registry/core/pod/strategy.go`` ``ExecLocation``,
``AttachLocation``, ``PortForwardLocation``, ``LogLocation``); since 1.30 it also translates:
websocket exec/attach (``v5.channel.k8s.io``) to the kubelet's SPDY, and websocket-tunnelled
SPDY port-forward to plain SPDY.  Here the node's streaming server (``fakes.node.streaming``, a
:class:`Kubelet`) is reached through :attr:`ApiServer.kubelets`, wired by the cluster's
composition (``fakes.serve``), and :class:`~fakes.streams.handler.StreamHandler` speaks the
client's protocol (websocket channels, SPDY, or SPDY tunnelled in a websocket).

Authorization is the real server's: the request's verb (``get`` for a websocket's GET, ``create``
for SPDY's POST) on the subresource, and for a GET upgrade ``create`` too, as servers with
``AuthorizePodWebsocketUpgradeCreatePermission`` (beta from 1.35) require.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from tornado import iostream, web

from fakes.auth.impersonation import impersonate
from fakes.memory import MemoryCluster
from fakes.streams.handler import MAX_MESSAGE, NodeStreams, StreamHandler
from gateway.cluster.interface import BadRequest, ClusterError, Obj, ServerError
from gateway.cluster.resources import RESOURCES
from gateway.cluster.status import to_status

if TYPE_CHECKING:
    from fakes.apiserver.server import ApiServer

__all__ = ["MAX_MESSAGE", "PATH", "Kubelet", "StreamingHandler", "follow_log"]

PATH = r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/(exec|attach|portforward)/?"
"""The streaming subresources, routed to :class:`StreamingHandler` ahead of every other path."""


class Kubelet(NodeStreams, Protocol):
    """What the API server needs from a node to stream to its pods (``fakes.node.streaming.NodeStreaming``)."""

    def follow_log(self, namespace: str, pod: str, container: str, tail_lines: int | None) -> AsyncIterator[bytes]: ...


def _container(pod: Obj, wanted: str | None) -> str:
    """The container a request names, or the pod's only one (``pod/strategy.go`` ``validateContainer``)."""
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    names = [c.get("name") for c in spec.get("containers") or []]
    others = [c.get("name") for c in (spec.get("initContainers") or []) + (spec.get("ephemeralContainers") or [])]
    if not wanted:
        if len(names) != 1:
            raise BadRequest(f"a container name must be specified for pod {name}, choose one of: "
                             f"[{' '.join(str(n) for n in names)}]")
        return str(names[0])
    if wanted not in names and wanted not in others:
        raise BadRequest(f"container {wanted} is not valid for pod {name}")
    return wanted


def _node(server: ApiServer, pod: Obj) -> Kubelet:
    name = pod["metadata"]["name"]
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise BadRequest(f"pod {name} does not have a host assigned")
    kubelet = server.kubelets.get(node)
    if kubelet is None:
        raise ServerError(f'error dialing backend: dial tcp {node}:10250: no node agent serves node "{node}"')
    return kubelet


class StreamingHandler(StreamHandler):
    """One exec, attach or port-forward request: authorized, then upgraded to the protocol the client speaks."""

    def initialize(self, server: ApiServer) -> None:  # type: ignore[override]
        super().initialize(server.streams)
        self.server = server

    async def get(self, namespace: str, name: str, subresource: str) -> None:
        await self._serve(namespace, name, subresource)

    async def post(self, namespace: str, name: str, subresource: str) -> None:
        await self._serve(namespace, name, subresource)

    async def _serve(self, namespace: str, name: str, subresource: str) -> None:
        try:
            user = self.server.authenticate(self.request.headers.get("Authorization"))
            user = impersonate(user, self.request.headers, self.server.store)
            verb = "get" if self.request.method == "GET" else "create"
            cluster = MemoryCluster(self.server.store, user)
            await cluster.authorize(verb, "pods", name, namespace=namespace, subresource=subresource)
            if verb == "get" and self.upgrade:
                await cluster.authorize("create", "pods", name, namespace=namespace, subresource=subresource)
            pod = self.server.store.get(RESOURCES["pods"], namespace, name)
            self.require_upgrade()
            kubelet = _node(self.server, pod)
            meta = pod["metadata"]
            if subresource == "portforward":
                await self.port_forward(kubelet, meta["namespace"], meta["name"], meta.get("uid", ""))
            else:
                options = self.stream_options(_container(pod, self.get_query_argument("container", None)), subresource)
                await self.remote_command(kubelet, meta["namespace"], meta["name"], subresource, options)
        except ClusterError as err:
            if not self._headers_written and not self._finished:
                self.set_status(err.status)
                self.set_header("Content-Type", "application/json")
                self.finish(to_status(err))


# ------------------------------------------------------------------------------------------ logs


async def follow_log(handler: web.RequestHandler, server: ApiServer, cluster: MemoryCluster, namespace: str,
                     name: str, query: dict[str, str], tail_lines: int | None) -> None:
    """``pods/log?follow=true``: the log so far, then what the container writes until it stops.

    Called by the API server's resource handler; the ``pods/log`` read authorizes the caller and
    refuses containers that have nothing to show, exactly as an unfollowed read does.
    """
    container = query.get("container") or None
    await cluster.read_pod_log(name, namespace, container=container, tail_lines=0)
    pod = server.store.get(RESOURCES["pods"], namespace, name)
    try:
        kubelet = _node(server, pod)
    except ClusterError:
        kubelet = None
    if kubelet is None:  # no node runs it yet: the log that exists, as an unfollowed read
        text = await cluster.read_pod_log(name, namespace, container=container, tail_lines=tail_lines)
        handler.set_header("Content-Type", "text/plain")
        handler.finish(text)
        return
    handler.set_status(200)
    handler.set_header("Content-Type", "text/plain")
    try:
        async for chunk in kubelet.follow_log(namespace, name, _container(pod, container), tail_lines):
            handler.write(chunk)
            await handler.flush()
    except iostream.StreamClosedError:
        return
    if not handler._finished:
        handler.finish()

