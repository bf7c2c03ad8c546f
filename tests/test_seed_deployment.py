"""The seed's deployment on the simulated cluster, as an operator runs it: ``kubectl apply -f
manifests/enterprise-gateway.yaml``, then the gateway answers on its Service's node port.

The whole cluster runs as ``kernelgate cluster`` runs it: API server, controller manager, node
agent, kube-proxy.  The Deployment rolls out (``kubectl rollout status``) to two gateway pods,
each a real ``kernelgate serve`` in its own pod sandbox, configured in-cluster; requests through
the node port reach both replicas (each pod's log shows which requests it served), a kernel
starts through it, a deleted gateway pod is replaced, and ``kubectl delete -f`` leaves no gateway
process behind.  Every wait is kubectl's own or a watch.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fakes.manifests import MANIFEST
from fakes.memory import MemoryCluster
from fakes.node.sandbox import namespaces_available
from fakes.serve import SimulatedCluster
from gateway.cluster.interface import Obj
from tests.kubectlclient import Kubectl
from tests.objectwait import wait_for_items, wait_for_object

pytestmark = [
    pytest.mark.slow,
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
    pytest.mark.skipif(not namespaces_available(), reason="gateway pods need a mount namespace each (root)"),
]

NS = "enterprise-gateway"
SELECTOR = "gateway-selector=enterprise-gateway"
CLIENTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")


@pytest.fixture
async def cluster(tmp_path) -> AsyncIterator[SimulatedCluster]:
    async with SimulatedCluster(state_dir=tmp_path / "state") as simulated:
        yield simulated


@pytest.fixture
def kubectl(cluster: SimulatedCluster, tmp_path) -> Kubectl:
    return Kubectl(cluster.kubeconfig_path, tmp_path / "cache")


async def call(node_port: int, method: str, path: str, client_ip: str, body: Any = None) -> tuple[int, Any]:
    """One request to the node port from ``client_ip``: its status and JSON body (``None`` when empty)."""
    def send() -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", node_port, timeout=30, source_address=(client_ip, 0))
        try:
            payload = json.dumps(body) if body is not None else None
            connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            data = response.read()
            return response.status, json.loads(data) if data else None
        finally:
            connection.close()
    return await asyncio.to_thread(send)


def ready_pods(pods: list[Obj]) -> list[Obj]:
    return [p for p in pods if not p["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or [])]


def processes_of(pod_names: set[str]) -> set[int]:
    """Processes on this host running in one of ``pod_names`` (their environment's ``HOSTNAME``)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                variables = f.read().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(b"HOSTNAME=") and v[9:].decode(errors="replace") in pod_names for v in variables):
            found.add(int(entry))
    return found


async def served_by(admin: MemoryCluster, pods: list[Obj], timeout: float = 30.0) -> dict[str, set[int]]:
    """Which clients' ``GET /api`` each replica's access log shows, once every client shows in one (or at ``timeout``).

    A replica writes its access-log line as it finishes the response, so a client can hold the
    answer a moment before the line is in the log: read the logs again until all are there.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        served: dict[str, set[int]] = {}
        for pod in pods:
            log = await admin.read_pod_log(pod["metadata"]["name"], NS)
            served[pod["metadata"]["name"]] = {n for n in range(len(CLIENTS)) if f"GET /api?client={n} " in log}
        if set().union(*served.values()) == set(range(len(CLIENTS))) or loop.time() > deadline:
            return served
        await asyncio.sleep(0.05)


async def test_the_seed_deployment_rolls_out_serves_heals_and_goes(cluster, kubectl):
    admin = MemoryCluster(cluster.store)
    await kubectl("apply", "-f", str(MANIFEST))
    _, out, _ = await kubectl("rollout", "status", "deployment/enterprise-gateway", "-n", NS, "--timeout=90s")
    assert 'deployment "enterprise-gateway" successfully rolled out' in out

    deployment = await admin.get("deployments", "enterprise-gateway", namespace=NS)
    status = deployment["status"]
    assert (status["replicas"], status["readyReplicas"], status["availableReplicas"], status["updatedReplicas"]) == (2, 2, 2, 2)
    pods = ready_pods((await admin.list("pods", namespace=NS, label_selector=SELECTOR))["items"])
    assert len(pods) == 2 and len({p["status"]["podIP"] for p in pods}) == 2
    seen_pods = {p["metadata"]["name"] for p in pods}

    service = await admin.get("services", "enterprise-gateway", namespace=NS)
    node_port = service["spec"]["ports"][0]["nodePort"]
    await cluster.service_proxy.wait_for_node_ports(lambda ports: node_port in ports, timeout=10)
    await wait_for_items(admin, "endpointslices", NS, lambda slices: sum(
        e["conditions"]["ready"] for s in slices for e in s.get("endpoints") or []) == 2,
        label_selector="kubernetes.io/service-name=enterprise-gateway")

    # No affinity (any replica serves any kernel): connections go round the ready replicas, so every
    # replica serves and every client is served.
    for number, client in enumerate(CLIENTS):
        for _ in range(2):
            code, body = await call(node_port, "GET", f"/api?client={number}", client)
            assert code == 200 and body["gateway_version"]
    served = await served_by(admin, pods)
    assert all(served.values()), served
    assert set().union(*served.values()) == set(range(len(CLIENTS)))

    # The gateway starts kernels on the cluster it runs in: the node knows the kernel images.
    code, kernel = await call(node_port, "POST", "/api/kernels", CLIENTS[0],
                              {"name": "python_kubernetes", "env": {"KERNEL_USERNAME": "alice"}})
    assert code == 201, kernel
    code, model = await call(node_port, "GET", f"/api/kernels/{kernel['id']}", CLIENTS[0])
    assert code == 200 and model["execution_state"] in ("idle", "busy", "starting")
    code, _ = await call(node_port, "DELETE", f"/api/kernels/{kernel['id']}", CLIENTS[0])
    assert code == 204

    # A deleted gateway pod is replaced.
    victim = pods[0]["metadata"]["name"]
    await kubectl("delete", "pod", victim, "-n", NS, "--wait=false")
    healed = await wait_for_items(
        admin, "pods", NS, lambda items: victim not in {p["metadata"]["name"] for p in items} and len(ready_pods(items)) == 2,
        label_selector=SELECTOR, timeout=60)
    seen_pods |= {p["metadata"]["name"] for p in healed}
    assert len(seen_pods) == 3
    code, _ = await call(node_port, "GET", "/api", CLIENTS[0])
    assert code == 200

    # Deleting the manifest's objects leaves no gateway process behind.
    assert await asyncio.to_thread(processes_of, seen_pods)
    # The store deletes a namespace's objects at once, so kubectl finds the later ones gone already.
    await kubectl("delete", "-f", str(MANIFEST), "--ignore-not-found")
    await wait_for_object(admin, "namespaces", None, NS, lambda ns: ns is None, timeout=60)
    assert not await asyncio.to_thread(processes_of, seen_pods)
