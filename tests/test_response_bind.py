"""Where the response listener binds: ``EG_RESPONSE_IP`` when it is set, else every address, as Enterprise Gateway.

The gateway runs on the simulated cluster as it would on one named by a kubeconfig (launchers call back over
the network, not on the embedded cluster's loopback), so the address comes from the settings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app import EmbeddedCluster, Gateway
from gateway.config import GatewayConfig
from gateway.provisioner.response import listen_host
from tests.httpharness import USER, WAIT

pytestmark = pytest.mark.slow


async def started_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, response_ip: str | None) -> Gateway:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("EG_RESPONSE_PORT", raising=False)
    if response_ip is None:
        monkeypatch.delenv("EG_RESPONSE_IP", raising=False)
        monkeypatch.setenv("POD_IP", "127.0.0.1")  # where launchers call back; the listener binds every address
    else:
        monkeypatch.setenv("EG_RESPONSE_IP", response_ip)
    config = GatewayConfig(ip="127.0.0.1", port=0, kernel_launch_timeout=WAIT)
    connection = EmbeddedCluster(config.namespace, work_dir=tmp_path / "node")
    connection.local = False  # as a cluster named by a kubeconfig: launchers call back over the network
    gateway = Gateway(config, cluster=connection)
    await gateway.start()
    return gateway


def bound_address(gateway: Gateway) -> str:
    assert gateway.listener is not None and gateway.listener._server is not None
    return gateway.listener._server.sockets[0].getsockname()[0]


async def test_the_listener_binds_eg_response_ip_and_launchers_reach_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = await started_gateway(tmp_path, monkeypatch, "127.0.0.1")
    try:
        assert bound_address(gateway) == "127.0.0.1"
        assert gateway.response_address == f"127.0.0.1:{gateway.listener.port}"  # type: ignore[union-attr]
        assert gateway.service is not None
        kernel = await gateway.service.start_kernel(name=None, env={"KERNEL_USERNAME": USER}, username_fallback="x")
        assert kernel.connection is not None  # its launcher called back on 127.0.0.1
    finally:
        await gateway.stop()


async def test_without_eg_response_ip_the_listener_binds_every_address(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = await started_gateway(tmp_path, monkeypatch, None)
    try:
        assert bound_address(gateway) == "0.0.0.0"
    finally:
        await gateway.stop()


def test_the_embedded_cluster_keeps_the_listener_on_loopback() -> None:
    assert listen_host("10.1.2.3", local=True) == "127.0.0.1"
    assert listen_host("", local=True) == "127.0.0.1"
    assert listen_host("10.1.2.3", local=False) == "10.1.2.3"
