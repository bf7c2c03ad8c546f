"""kube-proxy of the simulated node: a NodePort Service answers on 127.0.0.1, relaying to its endpoints.

The proxy runs as ``system:kube-proxy`` over the in-memory cluster.  Its endpoints are two small
servers of this test, each on its own loopback address, announcing themselves and then echoing
what they get; the Service's EndpointSlices are written by hand (no controllers run), so the
test decides what is ready.  Clients connect from distinct loopback addresses when the client's
address matters (session affinity).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from fakes.auth.bootstrap_roles import KUBE_PROXY
from fakes.auth.identity import AUTHENTICATED, UserInfo
from fakes.memory import MemoryCluster
from fakes.node.addresses import POD_IPS
from fakes.node.proxy import ServiceProxy
from fakes.state.store import Store
from gateway.cluster.interface import Cluster, Obj
from tests.kubeletharness import admin_fixture, store_fixture  # noqa: F401  (fixtures: admin, store)

NS = "default"


class Backend:
    """A server on its own loopback address: says its name, then echoes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ip = POD_IPS.allocate()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.ip, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        POD_IPS.release(self.ip)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"{self.name}\n".encode())
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        writer.close()


@pytest.fixture
async def backends() -> AsyncIterator[list[Backend]]:
    servers = [Backend("a"), Backend("b")]
    for server in servers:
        await server.start()
    yield servers
    for server in servers:
        await server.stop()


@pytest.fixture
async def proxy(store: Store) -> AsyncIterator[ServiceProxy]:
    proxy = ServiceProxy(MemoryCluster(store, UserInfo(KUBE_PROXY, (AUTHENTICATED,))))
    await proxy.start()
    yield proxy
    await proxy.stop()


async def node_port_service(admin: Cluster, proxy: ServiceProxy, **spec: object) -> int:
    service = await admin.create("services", {
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "targetPort": 8080}], **spec},
    }, namespace=NS)
    node_port = int(service["spec"]["ports"][0]["nodePort"])
    await proxy.wait_for_node_ports(lambda ports: node_port in ports, timeout=10)
    return node_port


async def add_endpoint(admin: Cluster, backend: Backend, *, ready: bool = True) -> Obj:
    return await admin.create("endpointslices", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"web-{backend.name}", "namespace": NS, "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [backend.ip], "conditions": {"ready": ready, "serving": ready, "terminating": False}}],
        "ports": [{"name": "http", "port": backend.port, "protocol": "TCP"}],
    }, namespace=NS)


async def endpoints_seen(proxy: ServiceProxy, ready: set[str]) -> None:
    """Wait until the proxy's cache shows exactly ``ready`` as the ready endpoint addresses."""
    def shows(_slice: Obj) -> bool:
        seen = {e["addresses"][0] for s in proxy.endpoint_slices.items() for e in s.get("endpoints") or []
                if e["conditions"]["ready"]}
        return seen == ready
    await proxy.endpoint_slices.wait_for(shows, namespace=NS, timeout=10)


async def ask(node_port: int, client_ip: str = "127.0.0.1", payload: bytes = b"ping") -> tuple[str, bytes]:
    """Connect from ``client_ip``: which backend answered, and what it echoed of ``payload``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", node_port, local_addr=(client_ip, 0))
    try:
        name = (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
        writer.write(payload)
        await writer.drain()
        echoed = await asyncio.wait_for(reader.readexactly(len(payload)), 5)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return name, echoed


async def test_connections_are_spread_round_robin_over_ready_endpoints(admin, proxy, backends):
    a, b = backends
    node_port = await node_port_service(admin, proxy)
    await add_endpoint(admin, a)
    await add_endpoint(admin, b)
    await endpoints_seen(proxy, {a.ip, b.ip})
    answers = [await ask(node_port) for _ in range(4)]
    names = [name for name, _ in answers]
    assert sorted(names) == ["a", "a", "b", "b"] and names[0] != names[1] and names[:2] == names[2:]
    assert all(echoed == b"ping" for _, echoed in answers)


async def test_an_endpoint_that_is_not_ready_gets_no_connections(admin, proxy, backends):
    a, b = backends
    node_port = await node_port_service(admin, proxy)
    await add_endpoint(admin, a)
    await add_endpoint(admin, b, ready=False)
    await endpoints_seen(proxy, {a.ip})
    assert {(await ask(node_port))[0] for _ in range(3)} == {"a"}
    await admin.patch("endpointslices", "web-b", {"endpoints": [
        {"addresses": [b.ip], "conditions": {"ready": True, "serving": True, "terminating": False}}]}, namespace=NS)
    await endpoints_seen(proxy, {a.ip, b.ip})
    assert {(await ask(node_port))[0] for _ in range(4)} == {"a", "b"}


async def test_client_ip_affinity_keeps_a_client_on_its_endpoint(admin, proxy, backends):
    a, b = backends
    node_port = await node_port_service(admin, proxy, sessionAffinity="ClientIP")
    await add_endpoint(admin, a)
    await add_endpoint(admin, b)
    await endpoints_seen(proxy, {a.ip, b.ip})
    first = [(await ask(node_port, client))[0] for client in ("127.0.0.2", "127.0.0.3")]
    assert sorted(first) == ["a", "b"]
    for _ in range(3):
        assert [(await ask(node_port, client))[0] for client in ("127.0.0.2", "127.0.0.3")] == first


async def test_without_endpoints_a_connection_is_reset_and_a_deleted_service_closes_its_port(admin, proxy):
    node_port = await node_port_service(admin, proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", node_port)
    try:
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()
    await admin.delete("services", "web", namespace=NS)
    await proxy.wait_for_node_ports(lambda ports: node_port not in ports, timeout=10)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", node_port)
