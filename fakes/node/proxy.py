"""kube-proxy for the simulated node: a NodePort Service answers on the node's address, spread over its ready endpoints.

For each port of a ``NodePort`` or ``LoadBalancer`` Service (TCP), :class:`ServiceProxy` listens
on ``<node IP>:<nodePort>`` (127.0.0.1 here) and relays each connection, byte for byte both
ways (HTTP and websockets alike), to one endpoint of the Service: round-robin over the ready
endpoints of its EndpointSlices, or, with ``sessionAffinity: ClientIP``, to the endpoint the
client's address went to last (for ``timeoutSeconds``, 3 hours by default), as kube-proxy's
rules do.  Without a ready endpoint, serving endpoints that are terminating are used; without
any, the connection is reset.  Endpoints are read from a watch-fed cache at each connection,
so the proxy follows them as they change; connections already relayed stay where they are.

Started by ``fakes.serve`` with its own identity (``system:kube-proxy``, bound to
``system:node-proxier``): it lists and watches Services and EndpointSlices through the
cluster interface, as kube-proxy does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from fakes.node.kubelet import HOST_IP
from gateway.aio import OwnedTasks
from gateway.cluster.informer import Informer, Subscription
from gateway.cluster.interface import Cluster, Obj

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
"""Seconds to reach an endpoint before the client's connection is reset."""
DEFAULT_AFFINITY_SECONDS = 10800
"""``sessionAffinityConfig.clientIP.timeoutSeconds`` when unset (the API's default)."""
CHUNK = 65536
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

Backend = tuple[str, int]


@dataclass(frozen=True)
class Route:
    """Where connections to one node port go: a Service's port, and its affinity."""

    namespace: str
    service: str
    port_name: str
    affinity_seconds: float | None  # None: no session affinity


@dataclass
class _Affinity:
    backend: Backend
    last_seen: float


class ServiceProxy:
    """The node ports of every NodePort and LoadBalancer Service, relayed to their endpoints (see the module docstring)."""

    def __init__(self, cluster: Cluster, *, node_ip: str = HOST_IP, clock: Callable[[], float] = time.monotonic) -> None:
        self.node_ip = node_ip
        self.services = Informer(cluster, "services")
        """The Services the proxy serves, as its watch last showed them."""
        self.endpoint_slices = Informer(cluster, "endpointslices")
        """The endpoints connections go to, as its watch last showed them."""
        self._synced = asyncio.Condition()
        self._routes: dict[int, Route] = {}
        self._servers: dict[int, asyncio.Server] = {}
        self._turn: dict[Route, int] = {}
        self._affinity: dict[Route, dict[str, _Affinity]] = {}
        self._clock = clock
        self._tasks = OwnedTasks("service proxy")
        self._relays = OwnedTasks("service proxy connections")

    @property
    def node_ports(self) -> dict[int, Route]:
        """The node ports served now."""
        return {port: self._routes[port] for port in self._servers}

    async def wait_for_node_ports(self, predicate: Callable[[dict[int, Route]], bool], timeout: float) -> None:
        """Return once ``predicate(node_ports)`` holds (checked after each change of the Services);
        ``asyncio.TimeoutError`` after ``timeout`` seconds.  For tests and tools that need a port open, or closed."""
        async with self._synced:
            await asyncio.wait_for(self._synced.wait_for(lambda: predicate(self.node_ports)), timeout)

    async def start(self) -> None:
        """Fill the caches and open the node ports of the Services there are; then follow Service changes."""
        await self.services.start()
        await self.endpoint_slices.start()
        changes = self.services.subscribe()
        await self._sync()
        self._tasks.spawn(self._follow(changes), "services")

    async def stop(self) -> None:
        """Close the node ports and every relayed connection, and end the watches."""
        await self._tasks.cancel_all()
        await self._relays.cancel_all()
        servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()
        await self.services.stop()
        await self.endpoint_slices.stop()

    async def _follow(self, changes: Subscription) -> None:
        async with changes:
            async for _event in changes:
                await self._sync()

    # ---------------------------------------------------------------- node ports

    async def _sync(self) -> None:
        """Serve exactly the node ports the Services ask for."""
        wanted: dict[int, Route] = {}
        for service in self.services.items():
            spec = service.get("spec") or {}
            if spec.get("type") not in ("NodePort", "LoadBalancer"):
                continue
            affinity: float | None = None
            if spec.get("sessionAffinity") == "ClientIP":
                config = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
                affinity = float(config.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)
            meta = service["metadata"]
            for port in spec.get("ports") or []:
                if port.get("nodePort") and (port.get("protocol") or "TCP") == "TCP":
                    wanted[int(port["nodePort"])] = Route(meta["namespace"], meta["name"], port.get("name") or "",
                                                          affinity)
        self._routes = wanted
        for node_port in [p for p in self._servers if p not in wanted]:
            self._servers.pop(node_port).close()
        for node_port in wanted:
            if node_port not in self._servers:
                await self._listen(node_port)
        async with self._synced:
            self._synced.notify_all()

    async def _listen(self, node_port: int) -> None:
        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._relays.spawn(self._relay(node_port, reader, writer), f"node port {node_port}")

        try:
            self._servers[node_port] = await asyncio.start_server(accepted, self.node_ip, node_port, reuse_address=True)
        except OSError as err:
            route = self._routes[node_port]
            log.warning("cannot serve node port %d of service %s/%s: %s", node_port, route.namespace, route.service, err)

    # ---------------------------------------------------------------- endpoints

    def backends(self, route: Route) -> list[Backend]:
        """The endpoints connections of ``route`` may go to: the ready ones, else serving terminating ones."""
        ready: list[Backend] = []
        terminating: list[Backend] = []
        for endpoint_slice in self.endpoint_slices.items():
            meta = endpoint_slice.get("metadata") or {}
            if meta.get("namespace") != route.namespace or \
                    (meta.get("labels") or {}).get(SERVICE_NAME_LABEL) != route.service:
                continue
            number = next((p.get("port") for p in endpoint_slice.get("ports") or []
                           if (p.get("name") or "") == route.port_name and (p.get("protocol") or "TCP") == "TCP"), None)
            if number is None:
                continue
            for endpoint in endpoint_slice.get("endpoints") or []:
                _sort_endpoint(endpoint, int(number), ready, terminating)
        return sorted(set(ready or terminating))

    def pick(self, route: Route, client_ip: str) -> Backend | None:
        """The endpoint for a new connection from ``client_ip``: its affine one, else the next in turn."""
        backends = self.backends(route)
        if not backends:
            return None
        now = self._clock()
        clients = self._affinity.setdefault(route, {}) if route.affinity_seconds is not None else None
        if clients is not None:
            known = clients.get(client_ip)
            if known is not None and known.backend in backends and now - known.last_seen < (route.affinity_seconds or 0):
                known.last_seen = now
                return known.backend
        turn = self._turn.get(route, 0)
        self._turn[route] = turn + 1
        choice = backends[turn % len(backends)]
        if clients is not None:
            clients[client_ip] = _Affinity(choice, now)
        return choice

    # ---------------------------------------------------------------- connections

    async def _relay(self, node_port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection: to an endpoint, then bytes both ways until both sides are done."""
        route = self._routes.get(node_port)
        peer = writer.get_extra_info("peername") or ("", 0)
        backend = self.pick(route, str(peer[0])) if route is not None else None
        if backend is None:
            _reset(writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(asyncio.open_connection(*backend), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as err:
            log.debug("node port %d: endpoint %s:%d unreachable: %s", node_port, *backend, err)
            _reset(writer)
            return
        writers = (writer, upstream_writer)
        try:
            await asyncio.gather(_pipe(reader, upstream_writer, writers), _pipe(upstream_reader, writer, writers))
        finally:
            for each in writers:
                each.close()
            for each in writers:
                with contextlib.suppress(OSError):
                    await each.wait_closed()


def _sort_endpoint(endpoint: Obj, port: int, ready: list[Backend], terminating: list[Backend]) -> None:
    conditions = endpoint.get("conditions") or {}
    addresses = endpoint.get("addresses") or []
    if not addresses:
        return
    if conditions.get("ready") is not False:  # unset counts as ready (discovery/v1 EndpointConditions)
        ready.append((addresses[0], port))
    elif conditions.get("serving") and conditions.get("terminating"):
        terminating.append((addresses[0], port))


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                both: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
    """Copy ``source`` to ``sink`` until end of stream, then half-close ``sink``; an error drops both sides."""
    try:
        while data := await source.read(CHUNK):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except (ConnectionError, OSError):
        for writer in both:
            writer.transport.abort()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Refuse a connection as an unreachable Service does: a TCP reset, not an orderly close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
