"""The kind target: a kind cluster with the gateway deployed from ``manifests/``, ready for the scenarios.

``kind_deployment`` (session) does what an operator does on a fresh cluster:

1. create a kind cluster with pytest-kind (its options apply: ``--cluster-name``,
   ``--keep-cluster``, ``--kind-image``, ``--kind-bin``, ``--kind-kubectl-bin``;
   ``kind`` and ``kubectl`` on ``PATH`` are used when present, else pytest-kind
   downloads them);
2. build the gateway and Python kernel images with docker and load them into
   the cluster (``kind load docker-image``);
3. apply the manifests with kubectl, plus a ``shared`` and a ``culling``
   gateway (``e2e.deploy.gateway_objects``), and wait for every Deployment to
   be available (``kubectl rollout status``);
4. port-forward each gateway's Service and write the scenarios' kind target
   file (``KERNELGATE_KIND_TARGET``).

On any failure the status, events and logs of every ``app=enterprise-gateway``
pod are written to ``E2E_ARTIFACTS`` (default ``.e2e-artifacts/``).  Without
a reachable docker daemon, or without kind and no way to download it, the
tests are skipped with the reason (they fail instead when ``E2E_REQUIRE_KIND``
is set, as in CI).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scenarios.variants import VARIANTS

from .deploy import REPO, Kubectl, KubectlError, apply, diagnostics, gateway_objects, port_forward, wait_available
from .images import IMAGES, build

ROLLOUT_TIMEOUT = 300.0
"""Seconds each gateway Deployment may take to become available (image already loaded)."""
DOCKER_TIMEOUT = 30.0
REQUIRE_KIND_ENV = "E2E_REQUIRE_KIND"
"""Set (to anything but 0) where a missing docker or kind must fail the run rather than skip it."""


def artifacts_dir() -> Path:
    path = Path(os.environ.get("E2E_ARTIFACTS") or REPO / ".e2e-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def docker_unavailable(docker: str | None = None) -> str | None:
    """Why docker cannot run kind here (``None`` when it can): no client, or no daemon answering."""
    docker = docker or shutil.which("docker")
    if docker is None:
        return "docker is not installed"
    try:
        done = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                              timeout=DOCKER_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"docker info failed: {error}"
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        return f"the docker daemon is not reachable: {lines[-1] if lines else f'exit {done.returncode}'}"
    return None


def _unavailable(reason: str) -> None:
    """Skip, saying why; fail instead where kind must run (``E2E_REQUIRE_KIND=1``, as in CI)."""
    if os.environ.get(REQUIRE_KIND_ENV, "") not in ("", "0"):
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class KindDeployment:
    """The deployed gateways: ``target_file`` is what ``--cluster=kind`` reads."""

    kubectl: Kubectl
    target_file: Path

    def save_diagnostics(self, label: str) -> Path:
        """Write the logs and events of every app=enterprise-gateway pod; the file's path."""
        path = artifacts_dir() / f"{label}-pods.txt"
        path.write_text(diagnostics(self.kubectl), encoding="utf-8")
        return path


@pytest.fixture(scope="session")
def kind_deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KindDeployment]:
    reason = docker_unavailable()
    if reason:
        _unavailable(f"the kind e2e needs docker: {reason}")
    from pytest_kind import KindCluster  # imported here: it needs nothing from a run that skips

    option = request.config.getoption
    kind_bin = option("kind_bin") or shutil.which("kind")
    kubectl_bin = option("kind_kubectl_bin") or shutil.which("kubectl")
    cluster = KindCluster(option("cluster_name"), Path(option("kubeconfig")) if option("kubeconfig") else None,
                          image=option("kind_image"), kind_path=Path(kind_bin) if kind_bin else None,
                          kubectl_path=Path(kubectl_bin) if kubectl_bin else None)
    try:
        cluster.ensure_kind()
        cluster.ensure_kubectl()
    except Exception as error:  # no binary on PATH and no download (offline)
        _unavailable(f"kind or kubectl is not installed and could not be downloaded: {error}")
    cluster.create()
    kubectl = Kubectl(cluster.kubeconfig_path, cluster.kubectl_path)
    deployment = KindDeployment(kubectl, tmp_path_factory.mktemp("kind") / "target.json")
    try:
        for image in IMAGES:
            build(image, REPO)
            for tag in image.tags:
                cluster.load_docker_image(tag)
        token = secrets.token_hex(16)
        try:
            apply(kubectl, gateway_objects(VARIANTS.values(), auth_token=token))
            wait_available(kubectl, VARIANTS.values(), timeout=ROLLOUT_TIMEOUT)
        except KubectlError as error:
            path = deployment.save_diagnostics("deploy")
            pytest.fail(f"deploying the gateways failed: {error}\npods' logs and events: {path}")
        with contextlib.ExitStack() as forwards:
            gateways = {name: {"url": forwards.enter_context(port_forward(kubectl, variant)), "token": token}
                        for name, variant in VARIANTS.items()}
            deployment.target_file.write_text(json.dumps({
                "kubeconfig": str(Path(cluster.kubeconfig_path).resolve()), "gateways": gateways}), encoding="utf-8")
            yield deployment
    finally:
        if not option("keep_cluster"):
            cluster.delete()
