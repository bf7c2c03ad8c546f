"""Readiness that tells the truth: ``/readyz`` follows the informers' view of the cluster.

An API server that stops answering makes the gateway unready once the grace has passed, and
ready again when it is back; one whose CA changed, or that rejects the gateway's token, makes it
unready at once, until the gateway trusts the new CA (read again from its kubeconfig); a token
rotated on disk is read again without the gateway ever noticing a failure.  The cluster is the
simulated API server reached through the real adapter, stopped and restarted on the same port;
the ``/readyz`` answers come from a gateway on the embedded cluster with faults injected.  Tests
wait for health transitions, never for fixed times.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fakes.apiserver.server import ApiServer
from fakes.memory import MemoryCluster
from fakes.serve import SimulatedCluster
from fakes.state.store import Store
from gateway.aio import Backoff
from gateway.cluster.informer import HealthState, Informer
from gateway.cluster.interface import ServiceUnavailable, Unauthorized
from gateway.cluster.kubernetes import KubernetesCluster
from gateway.cluster.kubernetes.credentials import InClusterSource
from gateway.config import ConfigError, GatewayConfig
from tests.httpharness import running_gateway

NS = "kernels"
GRACE = 0.5
WAIT = 20.0
FAST = Backoff(base=0.05, cap=0.2)


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "kernel", "image": "busybox"}]}}


class Clock:
    """The store's clock: the wall clock, moved forward by the test (tokens expire by it)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sim(clock: Clock) -> AsyncIterator[SimulatedCluster]:
    async with SimulatedCluster(node_agent=False, store=Store(clock=clock)) as sim:
        await MemoryCluster(sim.store).create("namespaces", {"metadata": {"name": NS}})
        yield sim


async def restart_api_server(sim: SimulatedCluster, *, new_ca: bool) -> None:
    """Stop the API server and start another on the same port over the same store (with a new CA, when asked)."""
    old = sim.server
    await old.stop()
    server = ApiServer(sim.store, host=old.host, port=old.port, admin_token=old.admin_token)
    if not new_ca:
        server.certificate = old.certificate
    await server.start()
    sim.server = server


async def watching(k8s: KubernetesCluster) -> Informer:
    informer = Informer(k8s, "pods", namespace=NS, readiness_grace=GRACE, backoff=FAST)
    await informer.start()
    assert informer.health.state is HealthState.SYNCED and informer.health.ready
    return informer


async def sees(informer: Informer, admin: MemoryCluster, name: str) -> None:
    await admin.create("pods", pod(name), namespace=NS)
    await informer.wait_for(lambda p: p is not None, namespace=NS, name=name, timeout=WAIT)


async def test_an_api_server_outage_makes_the_informer_unready_after_the_grace_and_ready_once_it_is_back(
        sim: SimulatedCluster) -> None:
    admin = MemoryCluster(sim.store)
    k8s = await asyncio.to_thread(KubernetesCluster.from_kubeconfig, str(sim.kubeconfig_path))
    informer = await watching(k8s)
    try:
        await sim.server.stop()
        await informer.health.wait_until(lambda h: not h.ready, timeout=WAIT)
        assert informer.health.state is HealthState.UNAVAILABLE
        assert informer.health.failing_since is not None and informer.health.watch_errors >= 1
        assert "the Kubernetes API has not answered the pods informer" in informer.health.reason
        await admin.create("pods", pod("during-the-outage"), namespace=NS)

        await restart_api_server(sim, new_ca=False)
        await informer.health.wait_until(lambda h: h.ready, timeout=WAIT)
        assert informer.health.state is HealthState.SYNCED
        await informer.wait_for(lambda p: p is not None, namespace=NS, name="during-the-outage", timeout=WAIT)
        await sees(informer, admin, "after-the-outage")
    finally:
        await informer.stop()
        await k8s.close()


async def test_a_watch_that_reopened_silently_after_the_grace_check_failed_still_makes_it_ready() -> None:
    # The race an API server restart can make: the retried watch reopens on the server that came
    # back just after the list at the grace's end failed.  Nothing changes, so no event says the
    # watch works; the informer must still become ready again without waiting for the watch's end.
    store = Store()
    cluster = MemoryCluster(store)
    await cluster.create("namespaces", {"metadata": {"name": NS}})
    informer = Informer(cluster, "pods", namespace=NS, readiness_grace=GRACE, backoff=FAST, resync_timeout=300)
    await informer.start()
    try:
        store.faults.inject("watch", "pods", error=ServiceUnavailable("the API server is restarting"), times=1)
        store.faults.inject("list", "pods", error=ServiceUnavailable("the API server is restarting"), times=1)
        store.faults.drop_watches("pods")  # the re-watch fails once, then reopens and stays silent
        await informer.health.wait_until(lambda h: h.state is HealthState.UNAVAILABLE, timeout=WAIT)
        await informer.health.wait_until(lambda h: h.ready, timeout=WAIT)
        assert informer.health.state is HealthState.SYNCED
        await sees(informer, cluster, "after-the-restart")
    finally:
        await informer.stop()


async def test_a_changed_ca_is_refused_at_once_until_the_kubeconfig_trusts_it(sim: SimulatedCluster) -> None:
    admin = MemoryCluster(sim.store)
    k8s = await asyncio.to_thread(KubernetesCluster.from_kubeconfig, str(sim.kubeconfig_path))
    informer = await watching(k8s)
    try:
        await restart_api_server(sim, new_ca=True)
        await informer.health.wait_until(lambda h: h.state is HealthState.REJECTED, timeout=WAIT)
        assert not informer.health.ready
        assert "refuses the gateway's credentials" in informer.health.reason
        assert "certificate verify failed" in informer.health.reason

        await asyncio.to_thread(sim.write_kubeconfig)  # the operator hands the gateway the new CA
        await informer.health.wait_until(lambda h: h.ready, timeout=WAIT)
        assert k8s.credentials.changes == 1
        await sees(informer, admin, "after-the-new-ca")
    finally:
        await informer.stop()
        await k8s.close()


async def gateway_account(admin: MemoryCluster) -> None:
    """The service account ``NS/gateway``, bound to cluster-admin."""
    await admin.create("serviceaccounts", {"metadata": {"name": "gateway"}}, namespace=NS)
    await admin.create("clusterrolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "gateway"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "gateway", "namespace": NS}],
    })


def write_atomically(path: Path, text: str) -> None:
    """Replace a file's content in one step, as the kubelet swaps a projected volume's files."""
    fresh = path.with_suffix(".new")
    fresh.write_text(text)
    os.replace(fresh, path)


def kubeconfig_with_token_file(sim: SimulatedCluster, path: Path) -> Path:
    """A kubeconfig whose user reads its token from ``token`` beside it (a relative ``tokenFile``)."""
    doc = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "sim", "cluster": {"server": sim.url, "certificate-authority": str(sim.ca_path)}}],
        "users": [{"name": "gateway", "user": {"tokenFile": "token"}}],
        "contexts": [{"name": "gateway", "context": {"cluster": "sim", "user": "gateway"}}],
        "current-context": "gateway",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("source", ["kubeconfig tokenFile", "in-cluster service account"])
async def test_a_token_rotated_on_disk_is_read_again_when_the_old_one_is_refused(
        sim: SimulatedCluster, clock: Clock, tmp_path: Path, source: str) -> None:
    admin = MemoryCluster(sim.store)
    await gateway_account(admin)
    token_file = tmp_path / "token"
    token_file.write_text(await admin.create_token("gateway", NS, expiration_seconds=600))
    if source == "kubeconfig tokenFile":
        path = kubeconfig_with_token_file(sim, tmp_path / "kubeconfig")
        k8s = await asyncio.to_thread(KubernetesCluster.from_kubeconfig, str(path))
    else:
        environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(sim.server.port)}
        k8s = await asyncio.to_thread(KubernetesCluster.from_source,
                                      InClusterSource(str(token_file), str(sim.ca_path), environ))
    informer = await watching(k8s)
    try:
        # The kubelet writes a fresh token; later the old one expires.
        write_atomically(token_file, await admin.create_token("gateway", NS, expiration_seconds=3600))
        clock.offset += 700
        sim.store.faults.drop_watches("pods")  # the informer's next watch is sent with the token it holds
        await sees(informer, admin, "after-the-rotation")
        assert [p["metadata"]["name"] for p in (await k8s.list("pods", namespace=NS))["items"]] == [
            "after-the-rotation"]
        assert k8s.credentials.changes == 1
        assert informer.health.state is HealthState.SYNCED and informer.health.watch_errors == 0
    finally:
        await informer.stop()
        await k8s.close()


# ------------------------------------------------------------------ /readyz


async def test_readyz_answers_503_with_the_reason_while_the_api_fails_and_200_once_it_answers(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, readiness_grace=GRACE) as gw:
        store, pods = gw.cluster.store, gw.gateway.pods
        assert pods is not None
        store.faults.inject("*", "pods", error=ServiceUnavailable("etcd is away"))
        store.faults.drop_watches("pods")
        await pods.health.wait_until(lambda h: not h.ready, timeout=WAIT)
        status, body, _ = await gw.call("GET", "/readyz", token="")
        assert status == 503, body
        assert body["checks"] == {"informer": False, "records": True, "response_listener": True}
        assert "has not answered the pods informer" in body["reasons"]["informer"]
        assert "etcd is away" in body["reasons"]["informer"] and "informer:" in body["message"]

        store.faults.clear()
        await pods.health.wait_until(lambda h: h.ready, timeout=WAIT)
        status, body, _ = await gw.call("GET", "/readyz", token="")
        assert status == 200 and body["checks"]["informer"] is True


async def test_readyz_answers_503_at_once_when_the_api_rejects_the_gateways_credentials(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, readiness_grace=3600.0) as gw:
        store, pods = gw.cluster.store, gw.gateway.pods
        assert pods is not None
        store.faults.inject("*", "pods", error=Unauthorized("Unauthorized"))
        store.faults.drop_watches("pods")
        await pods.health.wait_until(lambda h: h.state is HealthState.REJECTED, timeout=WAIT)
        status, body, _ = await gw.call("GET", "/readyz", token="")
        assert status == 503
        assert body["reasons"]["informer"] == "the Kubernetes API refuses the gateway's credentials (Unauthorized)"

        store.faults.clear()
        await pods.health.wait_until(lambda h: h.ready, timeout=WAIT)
        assert (await gw.call("GET", "/readyz", token=""))[0] == 200


def test_the_grace_is_read_from_its_variable_and_checked_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EG_READINESS_GRACE_SECS", raising=False)
    assert GatewayConfig().readiness_grace == 5.0
    monkeypatch.setenv("EG_READINESS_GRACE_SECS", "2.5")
    assert GatewayConfig().readiness_grace == 2.5
    monkeypatch.setenv("EG_READINESS_GRACE_SECS", "-1")
    with pytest.raises(ConfigError, match="EG_READINESS_GRACE_SECS"):
        GatewayConfig()
