"""What the kind target relies on, checked where no kind cluster is needed.

* The deployment step (``e2e.deploy``) applied with the real kubectl to the
  simulated API server: every gateway variant gets its own Deployment and
  Service with its settings and the token Secret, and re-applying changes
  nothing.
* The diagnostics collected on failure hold each gateway pod's events and logs.
* ``port_forward`` finds kubectl's local port, and stops kubectl afterwards.
* The ``EG_*`` settings e2e gives the kind gateways say what the in-process
  targets set as traits.
* Without docker the kind target is skipped, saying why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fakes.serve import SimulatedCluster
from gateway.config import GatewayConfig
from scenarios.observe import wait_until
from scenarios.variants import GATEWAY_NAMESPACE, VARIANTS

from .conftest import docker_unavailable
from .deploy import (
    AUTH_SECRET,
    REPO,
    Kubectl,
    KubectlError,
    apply,
    deployment_name,
    diagnostics,
    gateway_objects,
    port_forward,
)
from .images import IMAGES

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=list(VARIANTS))
def test_a_variants_environment_configures_what_its_traits_do(variant, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in variant.env.items():
        monkeypatch.setenv(name, value)
    config = GatewayConfig()
    assert {trait: getattr(config, trait) for trait in variant.traits} == dict(variant.traits)


@needs_kubectl
async def test_the_gateways_deploy_with_their_settings_and_reapplying_changes_nothing(tmp_path: Path) -> None:
    async with SimulatedCluster(state_dir=tmp_path / "state", node_agent=False) as cluster:
        kubectl = Kubectl(cluster.kubeconfig_path, cache_dir=tmp_path / "cache")
        objects = gateway_objects(VARIANTS.values(), auth_token="t0ken")
        first = await asyncio.to_thread(apply, kubectl, objects)
        assert "created" in first
        again = await asyncio.to_thread(apply, kubectl, objects)
        assert set(line.rsplit(" ", 1)[-1] for line in again.splitlines()) == {"unchanged"}, again

        from fakes.memory import MemoryCluster

        admin = MemoryCluster(cluster.store)
        secret = await admin.get("secrets", AUTH_SECRET, namespace=GATEWAY_NAMESPACE)
        assert secret["data"]["token"] == "dDBrZW4="  # base64 of t0ken
        templates = {}
        for variant in VARIANTS.values():
            name = deployment_name(variant)
            deployment = await admin.get("deployments", name, namespace=GATEWAY_NAMESPACE)
            pod = deployment["spec"]["template"]
            container = pod["spec"]["containers"][0]
            env = {var["name"]: var.get("value", var.get("valueFrom")) for var in container["env"]}
            assert {k: env[k] for k in variant.env} == dict(variant.env)
            assert env["EG_AUTH_TOKEN"] == {"secretKeyRef": {"name": AUTH_SECRET, "key": "token"}}
            assert pod["spec"]["serviceAccountName"] == "enterprise-gateway-sa"
            assert container["image"] in IMAGES[0].tags
            templates[name] = pod["metadata"]["labels"]
        # Each Service reaches its own gateway's pods only.
        for name in templates:
            service = await admin.get("services", name, namespace=GATEWAY_NAMESPACE)
            selector = service["spec"]["selector"].items()
            assert [n for n, labels in templates.items() if selector <= labels.items()] == [name]
        await admin.close()


@needs_kubectl
async def test_diagnostics_hold_the_events_and_logs_of_every_gateway_pod(tmp_path: Path) -> None:
    async with SimulatedCluster(state_dir=tmp_path / "state") as cluster:
        from fakes.memory import MemoryCluster

        admin = MemoryCluster(cluster.store)
        await admin.create("namespaces", {"metadata": {"name": GATEWAY_NAMESPACE}})
        for name, line in (("gw-a", "serving at 8888"), ("gw-b", "Traceback: no kernelspecs")):
            await admin.create("pods", {
                "metadata": {"name": name, "labels": {"app": "enterprise-gateway", "component": "enterprise-gateway"}},
                "spec": {"restartPolicy": "Never",
                         "containers": [{"name": "gateway", "image": "busybox", "command": ["sh", "-c", f"echo {line}"]}]},
            }, namespace=GATEWAY_NAMESPACE)
        await admin.create("pods", {
            "metadata": {"name": "unrelated"},
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "echo not ours"]}]},
        }, namespace=GATEWAY_NAMESPACE)
        await wait_until(admin, "pods", lambda pods: all(p.get("status", {}).get("phase") == "Succeeded"
                                                         for p in pods.values()) and len(pods) == 3,
                         namespace=GATEWAY_NAMESPACE, timeout=60)
        report = await asyncio.to_thread(diagnostics, Kubectl(cluster.kubeconfig_path, cache_dir=tmp_path / "cache"))
        await admin.close()
    assert "pod enterprise-gateway/gw-a" in report and "pod enterprise-gateway/gw-b" in report
    assert "serving at 8888" in report and "Traceback: no kernelspecs" in report
    assert "Started" in report  # the node's events about the pod
    assert "unrelated" not in report and "not ours" not in report


def test_without_docker_the_kind_target_is_skipped_with_the_reason(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patched:
        patched.setenv("PATH", str(tmp_path))
        assert docker_unavailable() == "docker is not installed"
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///nowhere.sock.' >&2\nexit 1\n")
    fake.chmod(0o755)
    assert docker_unavailable(str(fake)) == (
        "the docker daemon is not reachable: Cannot connect to the Docker daemon at unix:///nowhere.sock.")
    # The kind test itself, where no daemon answers: reported as skipped, with the reason.
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "e2e" / "test_kind.py"), "-p", "no:cacheprovider", "-rs", "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert "1 skipped" in done.stdout, done.stdout + done.stderr
    assert "the kind e2e needs docker: the docker daemon is not reachable" in done.stdout


def _fake_kubectl(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\necho \"$@\" > {path}.args\necho $$ > {path}.pid\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("variant", [VARIANTS["default"], VARIANTS["culling"]], ids=["default", "culling"])
def test_port_forward_yields_the_local_url_and_stops_kubectl(tmp_path: Path, variant) -> None:
    kubectl_bin = _fake_kubectl(tmp_path / "kubectl", 'echo "Forwarding from 127.0.0.1:41234 -> 8888"\n'
                                                      "exec sleep 300")
    kubectl = Kubectl(tmp_path / "kubeconfig", kubectl_bin)
    with port_forward(kubectl, variant, timeout=30) as url:
        assert url == "http://127.0.0.1:41234"
    args = (tmp_path / "kubectl.args").read_text().split()
    assert args == ["port-forward", "-n", GATEWAY_NAMESPACE, f"service/{deployment_name(variant)}", ":8888",
                    "--address", "127.0.0.1"]
    with pytest.raises(ProcessLookupError):  # kubectl was stopped and reaped
        os.kill(int((tmp_path / "kubectl.pid").read_text()), 0)


def test_port_forward_that_fails_says_why(tmp_path: Path) -> None:
    kubectl_bin = _fake_kubectl(tmp_path / "kubectl", 'echo "error: services \\"enterprise-gateway\\" not found"; exit 1')
    with pytest.raises(KubectlError, match="not found"):
        with port_forward(Kubectl(tmp_path / "kubeconfig", kubectl_bin), VARIANTS["default"], timeout=30):
            pass
