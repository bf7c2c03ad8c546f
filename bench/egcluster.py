"""Enterprise Gateway 3.3 deployed on the simulated cluster as its operators deploy it on Kubernetes.

Used by ``bench/eg_starts.py``, in this order:

* :func:`image_map`: before the cluster starts, the image map file (``kernelgate cluster
  --images``) that runs ``elyra/kernel-py:3.3.0`` on the simulated node as
  :meth:`tests.egharness.EnterpriseGateway.kernel_py_image` says;
* :meth:`EGProcess.start`, once the cluster serves: :func:`deploy`, what EG's Helm chart creates
  (the ``enterprise-gateway`` namespace, the ``enterprise-gateway-sa`` service account and the
  chart's own ClusterRoles ``enterprise-gateway-controller`` and ``kernel-controller``, read from
  the chart in EG's cached source distribution, bound to it), that account's token (TokenRequest)
  and the cluster's CA, written where the in-cluster configuration reads them
  (:mod:`bench.egstack`); then ``jupyter enterprisegateway`` from EG's own environment, with the
  chart's Deployment environment (``EG_NAMESPACE``, ``EG_KERNEL_CLUSTER_ROLE=kernel-controller``,
  a namespace per kernel unless the cluster rejects EG's RoleBindings:
  :func:`accepts_egs_role_bindings`) and EG's Kubernetes kernelspecs as ``etc/Makefile`` builds
  them, where the chart mounts them (their ``kernel.json`` names ``launch_kubernetes.py`` under
  ``/usr/local/share/jupyter/kernels``; here that folder is a temporary one, so the path is
  rewritten to it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from bench.egstack import SERVICEACCOUNT_DIR_VARIABLE, EGStack
from bench.procs import stop_process
from gateway.cluster.interface import Invalid
from gateway.cluster.kubernetes import KubernetesCluster
from tests.egharness import TAG

NAMESPACE = "enterprise-gateway"
SERVICE_ACCOUNT = "enterprise-gateway-sa"
KERNEL_PY = f"elyra/kernel-py:{TAG}"
KERNELSPEC = "python_kubernetes"
KERNELSPECS_IN_IMAGE = "/usr/local/share/jupyter/kernels/"
"""Where EG's kernel.json files expect the kernelspecs (the chart's kernelspecs mount)."""
TOKEN_SECONDS = 6 * 3600
LAUNCH_TIMEOUT = 180
"""EG_KERNEL_LAUNCH_TIMEOUT: as kernelgate's bench bound on one start (32 at once on two cores take long)."""
START_TIMEOUT = 60.0


def image_map(stack: EGStack, folder: Path) -> Path:
    """The ``--images`` file for ``kernelgate cluster``: ``elyra/kernel-py:3.3.0`` as the simulated node runs it.

    The file form has no ``files``, so the image's ``CMD`` (EG's bootstrap script at its path in
    the image) names the cached script directly.
    """
    spec = stack.eg.kernel_py_image()
    path = folder / "eg-images.json"
    path.write_text(json.dumps({"images": {KERNEL_PY: {"cmd": spec.argv(None, None), "env": spec.env}}}))
    return path


def _chart_cluster_roles(stack: EGStack) -> list[dict[str, Any]]:
    """The ClusterRoles of EG's Helm chart (``eg-clusterrole.yaml``), its template lines left out."""
    template = stack.eg.source / "etc" / "kubernetes" / "helm" / "enterprise-gateway" / "templates" / "eg-clusterrole.yaml"
    text = "\n".join(line for line in template.read_text().splitlines() if "{{" not in line)
    return [doc for doc in yaml.safe_load_all(text) if doc and doc.get("kind") == "ClusterRole"]


async def deploy(stack: EGStack, kubeconfig: str, folder: Path) -> tuple[Path, bool]:
    """Create EG's namespace, service account and RBAC as the admin; write its token and the CA into a folder.

    Returns that folder (``token``, ``ca.crt``) and whether the cluster takes EG's RoleBindings
    (:func:`accepts_egs_role_bindings`).  Called by :meth:`EGProcess.start` once the simulated cluster serves.
    """
    cluster = KubernetesCluster.from_kubeconfig(kubeconfig)
    try:
        await cluster.create("namespaces", {"metadata": {"name": NAMESPACE}})
        await cluster.create("serviceaccounts", {"metadata": {"name": SERVICE_ACCOUNT}}, namespace=NAMESPACE)
        for role in _chart_cluster_roles(stack):
            await cluster.create("clusterroles", role)
        await cluster.create("clusterrolebindings", {
            "metadata": {"name": "enterprise-gateway-controller"},
            "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
            "roleRef": {"kind": "ClusterRole", "name": "enterprise-gateway-controller",
                        "apiGroup": "rbac.authorization.k8s.io"},
        })
        token = await cluster.create_token(SERVICE_ACCOUNT, NAMESPACE, expiration_seconds=TOKEN_SECONDS)
        accepted = await accepts_egs_role_bindings(cluster)
    finally:
        await cluster.close()
    return await asyncio.to_thread(_write_accounts, folder, token, kubeconfig), accepted


def _write_accounts(folder: Path, token: str, kubeconfig: str) -> Path:
    """``folder``/serviceaccount with ``token`` and the cluster's CA (``ca.crt``), as a pod has them."""
    accounts = folder / "serviceaccount"
    accounts.mkdir()
    (accounts / "token").write_text(token)
    entry = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]
    if "certificate-authority-data" in entry:
        (accounts / "ca.crt").write_bytes(base64.b64decode(entry["certificate-authority-data"]))
    else:
        shutil.copy(entry["certificate-authority"], accounts / "ca.crt")
    return accounts


async def accepts_egs_role_bindings(cluster: KubernetesCluster) -> bool:
    """Whether the cluster takes the RoleBinding EG makes in each kernel's namespace (``roleRef.apiGroup: ""``).

    Kubernetes defaults an empty ``roleRef.apiGroup`` to ``rbac.authorization.k8s.io``; a cluster
    that rejects it instead fails every EG start in a namespace of its own, so the benchmark then
    runs both gateways with ``EG_SHARED_NAMESPACE=True`` (the chart's ``kernel.shareGatewayNamespace``).
    """
    body = {"metadata": {"name": "bench-probe"},
            "roleRef": {"apiGroup": "", "kind": "ClusterRole", "name": "kernel-controller"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NAMESPACE}]}
    try:
        await cluster.create("rolebindings", body, namespace=NAMESPACE)
    except Invalid:
        return False
    await cluster.delete("rolebindings", "bench-probe", namespace=NAMESPACE)
    return True


def server_address(kubeconfig: str) -> tuple[str, str]:
    """The API server's host and port (``KUBERNETES_SERVICE_HOST`` / ``_PORT`` of a pod)."""
    server = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
    host, _, port = server.removeprefix("https://").rstrip("/").rpartition(":")
    return host, port


def kernelspecs(stack: EGStack, folder: Path) -> Path:
    """EG's Kubernetes kernelspecs under ``folder``/share/kernels, their launcher path pointing there.

    Returns ``folder``/share, for ``JUPYTER_PATH``.
    """
    built = stack.eg.build_kernelspecs(folder / "build")
    share = folder / "share"
    share.mkdir()
    kernels = built.replace(share / "kernels")
    for kernel_json in kernels.glob("*/kernel.json"):
        kernel_json.write_text(kernel_json.read_text().replace(KERNELSPECS_IN_IMAGE, f"{kernels}/"))
    return share


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EGProcess:
    """``jupyter enterprisegateway`` on the simulated cluster, as the Helm chart's Deployment runs it (:meth:`stop`)."""

    @classmethod
    async def start(cls, stack: EGStack, kubeconfig: str) -> EGProcess:
        """Deploy EG's account and RBAC on the cluster (:func:`deploy`), start EG and wait until it serves."""
        scratch = tempfile.TemporaryDirectory(prefix="kernelgate-bench-eg-")
        try:
            accounts, accepted = await deploy(stack, kubeconfig, Path(scratch.name))
            return await asyncio.to_thread(cls, stack, kubeconfig, scratch, accounts, not accepted)
        except BaseException:
            scratch.cleanup()
            raise

    def __init__(self, stack: EGStack, kubeconfig: str, scratch: tempfile.TemporaryDirectory[str], accounts: Path,
                 shared_namespace: bool) -> None:
        self._dir = scratch
        folder = Path(scratch.name)
        self.shared_namespace = shared_namespace
        host, port = server_address(kubeconfig)
        self.port, response_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("EG_", "KERNEL_", "KUBECONFIG", "JUPYTER_", "PYTHON", "VIRTUAL_ENV"))}
        env.update({
            "PATH": f"{stack.bin}:{env.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(folder),
            "JUPYTER_PATH": str(kernelspecs(stack, folder)),
            "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port,
            SERVICEACCOUNT_DIR_VARIABLE: str(accounts),
            "EG_INHERITED_ENVS": SERVICEACCOUNT_DIR_VARIABLE,  # launch_kubernetes.py loads the in-cluster config too
            # the chart's Deployment, with its values' defaults
            "EG_PORT": str(self.port),
            "EG_RESPONSE_PORT": str(response_port),
            "EG_RESPONSE_IP": "127.0.0.1",
            "EG_NAMESPACE": NAMESPACE,
            "EG_KERNEL_CLUSTER_ROLE": "kernel-controller",
            "EG_SHARED_NAMESPACE": str(self.shared_namespace),
            "EG_MIRROR_WORKING_DIRS": "False",
            "EG_CULL_IDLE_TIMEOUT": "3600",
            "EG_CULL_CONNECTED": "False",
            "EG_LOG_LEVEL": "WARN",
            "EG_KERNEL_LAUNCH_TIMEOUT": str(LAUNCH_TIMEOUT),
            "EG_KERNEL_INFO_TIMEOUT": "60",
            "EG_ALLOWED_KERNELS": json.dumps([KERNELSPEC]),
            "EG_DEFAULT_KERNEL_NAME": KERNELSPEC,
            "EG_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME": "default",
            "EG_LIST_KERNELS": "True",
        })
        self._log = open(folder / "eg.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(stack.bin / "jupyter"), "enterprisegateway", "--ip=127.0.0.1", f"--port={self.port}",
             "--port_retries=0", "--log-level=WARN"],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=folder, env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_serving()

    def _wait_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/api/kernelspecs", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        stop_process(self.proc)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"Enterprise Gateway did not start:\n{tail}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 25) -> str:
        return "\n".join((Path(self._dir.name) / "eg.log").read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()
        self._dir.cleanup()

