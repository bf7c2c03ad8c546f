"""A pod's Python programs use the pod's own address, as in a network namespace of their own.

An unmodified client in a pod (``socket.create_connection``, no bind) reaches a listener on the
host from the pod's address, so whoever checks a peer's address (the gateway, for a kernel's
connection information) sees the pod; two pods may serve on the same port of ``0.0.0.0``; a
host-network pod connects from the node's address.  Real processes on tests/kubeletharness.py's
node, with and without a mount namespace per pod (``fakes/node/podnet``).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fakes.node.kubelet import NodeAgent
from fakes.node.sandbox import namespaces_available
from fakes.state.store import Store
from gateway.cluster.interface import Cluster
from tests.kubeletharness import NS, admin_fixture, pod, store_fixture  # noqa: F401 (fixtures)
from tests.node import node_agent
from tests.podwait import phase_is, wait_for_pod

pytestmark = pytest.mark.slow

CA = b"-----BEGIN CERTIFICATE-----\nnot a real one\n-----END CERTIFICATE-----\n"
WAIT = 30.0


@pytest.fixture(params=["shared", "isolated"])
async def agent(request: pytest.FixtureRequest, store: Store, tmp_path: Path) -> AsyncIterator[NodeAgent]:
    """node-1, its pods in the host's namespaces (``shared``) or each in mount and UTS namespaces of its own."""
    options: dict[str, object] = {"api_server_url": "https://127.0.0.1:6443"}
    if request.param == "isolated":
        if not namespaces_available():
            pytest.skip("a mount namespace per pod needs root and util-linux")
        options["api_ca_pem"] = CA
    node = node_agent(store, tmp_path / "node", **options)
    await node.start()
    yield node
    await node.stop()


class Listener:
    """A TCP listener on the host's 127.0.0.1: the peer address of each connection, awaitable."""

    def __init__(self) -> None:
        self.peers: asyncio.Queue[str] = asyncio.Queue()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        self.server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.peers.put(writer.get_extra_info("peername")[0])
        writer.close()
        await writer.wait_closed()


def client(port: int) -> list[str]:
    """A plain Python client: connects to the host's 127.0.0.1 without binding anything."""
    return ["python3", "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=10).close()"]


async def test_an_unmodified_client_connects_from_its_pods_address(agent: NodeAgent, admin: Cluster) -> None:
    async with Listener() as listener:
        await admin.create("pods", pod("caller", client(listener.port), image="python:3.11"), namespace=NS)
        done = await wait_for_pod(admin, NS, "caller", phase_is("Succeeded", "Failed"), timeout=WAIT)
        assert done["status"]["phase"] == "Succeeded", await admin.read_pod_log("caller", NS)
        peer = await asyncio.wait_for(listener.peers.get(), WAIT)
    assert peer == done["status"]["podIP"] != "127.0.0.1"


async def test_a_host_network_pod_connects_from_the_nodes_address(agent: NodeAgent, admin: Cluster) -> None:
    async with Listener() as listener:
        await admin.create("pods", pod("hosted", client(listener.port), image="python:3.11", hostNetwork=True),
                           namespace=NS)
        done = await wait_for_pod(admin, NS, "hosted", phase_is("Succeeded", "Failed"), timeout=WAIT)
        assert done["status"]["phase"] == "Succeeded", await admin.read_pod_log("hosted", NS)
        peer = await asyncio.wait_for(listener.peers.get(), WAIT)
    assert peer == done["status"]["hostIP"] == "127.0.0.1"


async def test_two_pods_serve_on_the_same_wildcard_port(agent: NodeAgent, admin: Cluster) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))  # the host's own address holds the port: only the pods' addresses are free
    port = taken.getsockname()[1]
    script = f"import socket; s = socket.socket(); s.bind(('0.0.0.0', {port})); s.listen(); print(s.getsockname()[0])"
    try:
        for name in ("serve-a", "serve-b"):
            await admin.create("pods", pod(name, ["python3", "-c", script], image="python:3.11"), namespace=NS)
        done = [await wait_for_pod(admin, NS, name, phase_is("Succeeded", "Failed"), timeout=WAIT)
                for name in ("serve-a", "serve-b")]
    finally:
        taken.close()
    assert [p["status"]["phase"] for p in done] == ["Succeeded", "Succeeded"]
    logs = [(await admin.read_pod_log(name, NS)).strip() for name in ("serve-a", "serve-b")]
    assert logs == [p["status"]["podIP"] for p in done]


async def test_a_wildcard_bind_to_any_free_port_gets_a_port_free_on_every_address(
        agent: NodeAgent, admin: Cluster) -> None:
    """EG's launcher picks its kernel's ports so, and ipykernel then binds them on ``0.0.0.0``."""
    script = "import socket; s = socket.socket(); s.bind(('0.0.0.0', 0)); print(s.getsockname()[0])"
    await admin.create("pods", pod("picker", ["python3", "-c", script], image="python:3.11"), namespace=NS)
    done = await wait_for_pod(admin, NS, "picker", phase_is("Succeeded", "Failed"), timeout=WAIT)
    log = (await admin.read_pod_log("picker", NS)).strip()
    assert (done["status"]["phase"], log) == ("Succeeded", "0.0.0.0")
