"""Targets of the cluster-interface contract suite.

Every test in ``tests/contract`` runs once per entry of :data:`TARGETS`.  A
target is an async factory returning a :class:`Target`: an admin
:class:`~gateway.cluster.interface.Cluster` for setup and assertions, a way
to open the same cluster as a service account (for RBAC), and, when the
target can do it, the fault controls of the simulated cluster behind it.

To add a target (the simulated API server through the real adapter, a real
cluster), write its factory and add one entry to :data:`TARGETS`.

``--cluster`` (comma-separated; the option the scenarios take too, registered in
the repository's root conftest.py) picks the targets: ``memory,apiserver`` by default, or ``kube``, the real control plane
built from Kubernetes' Go modules with the node agent as its kubelet
(:mod:`e2e.kube`; one per session, from the ``kube_cluster`` fixture).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from e2e.kube.fixture import kube_cluster  # noqa: F401 - the session fixture the kube target runs on
from e2e.kube.launcher import ControlPlane
from fakes.auth.identity import service_account_user
from fakes.memory import MemoryCluster
from fakes.state.faults import Faults
from fakes.state.store import Store
from gateway.cluster.interface import Cluster
from gateway.cluster.resources import RESOURCES
from tests.differential.wire import Wire

from .helpers import Client

_SERVICE_ACCOUNTS = RESOURCES["serviceaccounts"]

WATCH_WINDOW = 40
SCENARIO_ONLY_TARGETS = ("replicas", "kind")
"""Targets that ``--cluster`` may name for the scenarios (scenarios/conftest.py) but that the contract suite lacks."""
"""Events per resource the simulated targets keep for watches (small, so 410 Gone is cheap to reach)."""


@dataclass
class Target:
    """One cluster the contract suite runs against."""

    admin: Cluster
    open_as_service_account: Callable[[str, str], Awaitable[Cluster]]
    """``await open(namespace, name)``: the cluster as that (existing) service account."""
    faults: Faults | None = None
    """The simulated cluster's fault controls; ``None`` for a real cluster (fault tests skip)."""
    watch_window: int | None = None
    """Events a watch can replay; ``None`` when unknown (the 410 test skips)."""
    store: Store | None = None
    """The store behind a simulated target, for checks the interface cannot make (leaked watches)."""
    in_process: bool = False
    """True when calls reach the store directly (a closed watch is gone at once, not when a connection drops)."""
    kubeconfig: Path | None = None
    """An admin kubeconfig for raw HTTP (server-side apply, which the interface cannot send); ``None``: no wire."""
    _opened: list[Cluster] = field(default_factory=list)
    _on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        for cluster in self._opened:
            await cluster.close()
        await self.admin.close()
        for stop in self._on_close:
            await stop()


async def memory_target() -> Target:
    """The in-memory cluster: ``MemoryCluster`` over a fresh ``Store``."""
    store = Store(watch_window=WATCH_WINDOW)
    target: Target

    async def open_as(namespace: str, name: str) -> Cluster:
        sa = store.get(_SERVICE_ACCOUNTS, namespace, name)
        cluster = MemoryCluster(store, service_account_user(namespace, name, sa["metadata"]["uid"]))
        target._opened.append(cluster)
        return cluster

    target = Target(MemoryCluster(store), open_as, store.faults, WATCH_WINDOW, store, in_process=True)
    return target

async def apiserver_target() -> Target:
    """The simulated API server over HTTPS, through the real adapter (``KubernetesCluster``)."""
    from kubernetes.client import ApiClient, Configuration

    from fakes.serve import SimulatedCluster
    from gateway.cluster.kubernetes import KubernetesCluster

    store = Store(watch_window=WATCH_WINDOW)
    server = SimulatedCluster(node_agent=False, store=store)
    await server.start()
    admin = KubernetesCluster.from_kubeconfig(str(server.kubeconfig_path))
    target: Target

    async def open_as(namespace: str, name: str) -> Cluster:
        token = await admin.create_token(name, namespace)
        config = Configuration()
        config.host = server.url
        config.ssl_ca_cert = str(server.ca_path)
        config.api_key = {"authorization": token}
        config.api_key_prefix = {"authorization": "Bearer"}
        cluster = KubernetesCluster(ApiClient(config))
        target._opened.append(cluster)
        return cluster

    target = Target(admin, open_as, store.faults, WATCH_WINDOW, store, kubeconfig=server.kubeconfig_path,
                    _on_close=[server.stop])
    return target


async def kube_target(plane: ControlPlane) -> Target:
    """The real control plane (a session's ``kube_cluster``), through the real adapter as its admin."""
    from kubernetes.client import ApiClient, Configuration

    from gateway.cluster.kubernetes import KubernetesCluster

    admin = await asyncio.to_thread(KubernetesCluster.from_kubeconfig, str(plane.admin_kubeconfig))
    target: Target

    async def open_as(namespace: str, name: str) -> Cluster:
        token = await admin.create_token(name, namespace)
        config = Configuration()
        config.host = plane.url
        config.ssl_ca_cert = str(plane.ca_path)
        config.api_key = {"authorization": token}
        config.api_key_prefix = {"authorization": "Bearer"}
        cluster = KubernetesCluster(ApiClient(config))
        target._opened.append(cluster)
        return cluster

    target = Target(admin, open_as, kubeconfig=plane.admin_kubeconfig)
    return target


TARGETS: dict[str, Callable[[], Awaitable[Target]]] = {
    "memory": memory_target,
    "apiserver": apiserver_target,
}
SESSION_TARGETS: dict[str, tuple[str, Callable[[ControlPlane], Awaitable[Target]]]] = {
    "kube": ("kube_cluster", kube_target),
}
"""Targets over a cluster that lives for the whole session: the fixture that gives it, and the factory."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" not in metafunc.fixturenames:
        return
    names = [n.strip() for n in str(metafunc.config.getoption("clusters")).split(",") if n.strip()]
    known = (*TARGETS, *SESSION_TARGETS)
    unknown = [n for n in names if n not in known and n not in SCENARIO_ONLY_TARGETS]
    if unknown:
        raise pytest.UsageError(f"--cluster: unknown target(s) {unknown}; the contract suite runs on {', '.join(known)}")
    metafunc.parametrize("target", [n for n in names if n in known], indirect=True)


@pytest.fixture
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    if request.param in SESSION_TARGETS:
        fixture, factory = SESSION_TARGETS[request.param]
        made = await factory(request.getfixturevalue(fixture))
    else:
        made = await TARGETS[request.param]()
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
def cluster(target: Target) -> Cluster:
    """The admin connection of the target under test."""
    return target.admin


@pytest.fixture
async def ns(cluster: Cluster) -> AsyncIterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = f"contract-{uuid.uuid4().hex[:8]}"
    await cluster.create("namespaces", {"metadata": {"name": name}})
    yield name
    try:
        await cluster.delete("namespaces", name)
    except Exception:  # noqa: BLE001 - already gone or terminating: nothing left to clean
        pass


@pytest.fixture
async def client(target: Target, ns: str) -> AsyncIterator[Client]:
    """HTTP to the target's API server, in ``ns``; the in-memory target has no wire and skips."""
    if target.kubeconfig is None:
        pytest.skip("this target has no wire for requests the interface cannot send")
    wire = await asyncio.to_thread(Wire, target.kubeconfig)
    try:
        yield Client(wire, ns)
    finally:
        await asyncio.to_thread(wire.close)


@pytest.fixture
def faults(target: Target) -> Faults:
    if target.faults is None:
        pytest.skip("this target cannot inject faults")
    return target.faults
