"""The real control plane on this machine: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, one node.

:class:`ControlPlane` is started by the ``kube_cluster`` fixture
(:mod:`e2e.kube.fixture`) and by ``python -m e2e.kube``.  ``start()`` builds (or
finds) the binary, writes certificates and kubeconfigs into a fresh directory,
then starts, in order and each once the one before serves:

1. etcd (embedded in the binary), ready when it prints ``etcd ready``;
2. the API server: RBAC and Node authorization, client certificates, the
   default admission plugins (ServiceAccount among them) plus PodSecurity
   enforcing ``baseline`` by default; ready when ``/readyz`` answers 200;
3. the controller manager (namespaces, service accounts and their tokens,
   garbage collection, Deployments and ReplicaSets, endpoints and endpoint
   slices, the root CA ConfigMap, ClusterRole aggregation, node lifecycle),
   each controller with its own service account's credentials, and the
   scheduler; each ready when its ``/healthz`` answers 200;
4. the node agent as the kubelet (:mod:`e2e.kube.node`), ready when it prints ``node ready``;
   it serves the kubelet API (logs, exec, attach, port-forward) with a serving certificate of the
   cluster CA, which the API server verifies, and takes the API server's ``--kubelet-client-certificate``.

Waiting for ``/readyz`` and ``/healthz`` is a bounded retry with jittered back-off
(a process starting up has nothing to watch).  ``stop()`` ends every process it
started (SIGTERM, then SIGKILL) and removes the directory.  Should the process that
started them be killed before it can (no teardown runs), Linux still ends each as
its parent dies (the node agent with SIGTERM, so that it stops its pods; the others
with SIGKILL); only the directory is then left.  Each process logs to
``<work dir>/logs/<name>.log``; a failed start raises :class:`StartError` with the
end of that log.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

import yaml

from e2e.kube import build
from e2e.kube.node import READY_LINE as NODE_READY
from e2e.kube.pki import (
    ADMIN,
    APISERVER_KUBELET_CLIENT,
    CONTROLLER_MANAGER,
    FRONT_PROXY,
    SCHEDULER,
    Pki,
    node_identity,
    write_kubeconfig,
    write_pki,
    write_token_kubeconfig,
)
from gateway.aio import Backoff
from gateway.launcher.kernel import die_with_parent

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0
"""Seconds each component may take to become ready (the API server's first start seeds etcd: several seconds)."""
STOP_GRACE = 10.0
SERVICE_RANGE = "10.0.0.0/24"
CONTROLLERS = (
    "namespace-controller", "serviceaccount-controller", "serviceaccount-token-controller",
    "garbage-collector-controller", "deployment-controller", "replicaset-controller", "endpoints-controller",
    "endpointslice-controller", "root-ca-certificate-publisher-controller", "clusterrole-aggregation-controller",
    "node-lifecycle-controller",
)
POD_SECURITY = {
    "apiVersion": "apiserver.config.k8s.io/v1",
    "kind": "AdmissionConfiguration",
    "plugins": [{
        "name": "PodSecurity",
        "configuration": {
            "apiVersion": "pod-security.admission.config.k8s.io/v1",
            "kind": "PodSecurityConfiguration",
            "defaults": {"enforce": "baseline", "enforce-version": "latest", "warn": "baseline",
                         "warn-version": "latest", "audit": "baseline", "audit-version": "latest"},
            "exemptions": {"usernames": [], "runtimeClasses": [], "namespaces": []},
        },
    }],
}


class StartError(RuntimeError):
    """A component did not become ready; the message ends with its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Process:
    """One started component: its ``Popen`` and its log file."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, *, pipe_stdout: bool = False,
                 env: dict[str, str] | None = None, parent_death_signal: int = signal.SIGKILL) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if pipe_stdout else self._log, stderr=self._log,
            env=env, start_new_session=True,  # a terminal's Ctrl-C reaches the launcher, which stops them in order
            # A test run killed outright (a CI job's timeout) runs no teardown: the components must not run on
            # with their ports and pods.  SIGKILL by default: an API server asked to stop as etcd dies beside
            # it waits out its shutdown's etcd timeouts for minutes.  The node agent takes SIGTERM (and stops
            # its pods).
            preexec_fn=die_with_parent(os.getpid(), parent_death_signal),
        )

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def failed(self, why: str) -> StartError:
        return StartError(f"{self.name} {why}; the end of {self.log_path}:\n{self.log_tail()}")

    def await_line(self, line: str, timeout: float) -> None:
        """Block until the process prints ``line`` on stdout (it was started with ``pipe_stdout``)."""
        assert self.popen.stdout is not None
        deadline = time.monotonic() + timeout
        buffered = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.popen.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(deadline - time.monotonic()):
                    break
                chunk = os.read(self.popen.stdout.fileno(), 4096)
                if not chunk:
                    raise self.failed(f"exited ({self.popen.wait()}) before it was ready")
                buffered += chunk
                if line.encode() in buffered.splitlines():
                    return
        raise self.failed(f"printed no {line!r} within {timeout:.0f}s")

    def await_http(self, url: str, context: ssl.SSLContext, timeout: float) -> None:
        """Retry GET ``url`` with back-off until it answers 200, the process exits, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        backoff = Backoff(base=0.1, cap=1.0)
        last = "no answer"
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise self.failed(f"exited ({self.popen.returncode}) before it was ready")
            try:
                with urllib.request.urlopen(url, context=context, timeout=5) as answer:
                    if answer.status == 200:
                        return
            except urllib.error.HTTPError as error:
                last = f"{error.code} {error.read()[-300:].decode(errors='replace')}"
            except (urllib.error.URLError, OSError) as error:
                last = str(error)
            time.sleep(min(backoff.fail(), max(0.0, deadline - time.monotonic())))
        raise self.failed(f"was not ready within {timeout:.0f}s ({url}: {last})")

    def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns once the process is gone."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._log.close()


class ControlPlane:
    """A real single-node Kubernetes cluster whose kubelet is the node agent.

    ``work_dir`` (default: a new temporary directory, removed by :meth:`stop`)
    holds certificates, kubeconfigs, etcd's data and the logs.  ``images`` names an image map
    file (``fakes.node.images``) of images the node runs beside the repository's own.
    """

    def __init__(self, *, work_dir: Path | None = None, node_name: str = "node-1", node_agent: bool = True,
                 images: Path | None = None) -> None:
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="kernelgate-kube-"))
        self.node_name = node_name
        self.node_agent = node_agent
        self.images = images
        self.pki = Pki(self.work_dir / "pki")
        self.port = free_port()
        self._processes: list[_Process] = []

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.work_dir / "admin.kubeconfig"

    @property
    def ca_path(self) -> Path:
        return self.pki.ca_cert

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "logs"

    def kubeconfig(self, name: str) -> Path:
        return self.work_dir / f"{name}.kubeconfig"

    def token_kubeconfig(self, name: str, token: str) -> Path:
        """Write ``<work dir>/<name>.kubeconfig``: this cluster as the bearer of ``token`` (a service account's)."""
        return write_token_kubeconfig(self.kubeconfig(name), self.url, self.pki, name, token)

    def start(self) -> None:
        """Build or find the binary, write the PKI, start every component and wait for each (blocking)."""
        binary = build.binary()
        try:
            self._start(str(binary))
        except BaseException:
            self.stop()
            raise

    def _start(self, binary: str) -> None:
        for directory in (self.pki.directory, self.log_dir, self.work_dir / "etcd", self.work_dir / "node"):
            directory.mkdir(parents=True, exist_ok=True)
        node = node_identity(self.node_name)
        write_pki(self.pki.directory, [ADMIN, CONTROLLER_MANAGER, SCHEDULER, APISERVER_KUBELET_CLIENT, FRONT_PROXY, node],
                  kubelets=(self.node_name,))
        write_kubeconfig(self.admin_kubeconfig, self.url, self.pki, ADMIN)
        for name, who in (("controller-manager", CONTROLLER_MANAGER), ("scheduler", SCHEDULER), ("node", node)):
            write_kubeconfig(self.kubeconfig(name), self.url, self.pki, who)
        admission = self.work_dir / "admission.yaml"
        admission.write_text(yaml.safe_dump(POD_SECURITY, sort_keys=False))

        etcd_url = f"http://127.0.0.1:{free_port()}"
        etcd = self._spawn("etcd", [binary, "etcd", "--data-dir", str(self.work_dir / "etcd"), "--client-url", etcd_url,
                                    "--peer-url", f"http://127.0.0.1:{free_port()}"], pipe_stdout=True)
        etcd.await_line("etcd ready", START_TIMEOUT)

        apiserver = self._spawn("apiserver", [binary, "apiserver", *self._apiserver_flags(etcd_url, admission)])
        admin_context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        admin_context.load_cert_chain(self.pki.client_cert(ADMIN), self.pki.client_key(ADMIN))
        apiserver.await_http(f"{self.url}/readyz", admin_context, START_TIMEOUT)

        # Their serving certificates are self-signed in memory; /healthz is open to anyone.
        unverified = ssl._create_unverified_context()  # noqa: S323 - a health probe on loopback
        for name, flags in (("controller-manager", self._controller_manager_flags()),
                            ("scheduler", self._component_flags("scheduler"))):
            port = free_port()
            process = self._spawn(name, [binary, name, *flags, "--bind-address=127.0.0.1", f"--secure-port={port}"])
            process.await_http(f"https://127.0.0.1:{port}/healthz", unverified, START_TIMEOUT)

        if self.node_agent:
            agent = self._spawn("node", [
                sys.executable, "-m", "e2e.kube.node", "--kubeconfig", str(self.kubeconfig("node")),
                "--node-name", self.node_name, "--server", self.url, "--ca", str(self.pki.ca_cert),
                "--work-dir", str(self.work_dir / "node"),
                "--serving-cert", str(self.pki.kubelet_cert(self.node_name)),
                "--serving-key", str(self.pki.kubelet_key(self.node_name)),
                *(["--images", str(self.images)] if self.images is not None else []),
            ], pipe_stdout=True, env={**os.environ, "PYTHONPATH": _python_path()}, parent_death_signal=signal.SIGTERM)
            agent.await_line(NODE_READY, START_TIMEOUT)

    def _spawn(self, name: str, argv: list[str], *, pipe_stdout: bool = False,
               env: dict[str, str] | None = None, parent_death_signal: int = signal.SIGKILL) -> _Process:
        process = _Process(name, argv, self.log_dir, pipe_stdout=pipe_stdout, env=env,
                           parent_death_signal=parent_death_signal)
        self._processes.append(process)
        return process

    def _apiserver_flags(self, etcd_url: str, admission: Path) -> list[str]:
        pki = self.pki
        return [
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
            f"--cert-dir={self.work_dir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving_cert}", f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=ServiceAccount,PodSecurity",
            f"--admission-control-config-file={admission}",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            f"--kubelet-client-certificate={pki.client_cert(APISERVER_KUBELET_CLIENT)}",
            f"--kubelet-client-key={pki.client_key(APISERVER_KUBELET_CLIENT)}",
            f"--kubelet-certificate-authority={pki.ca_cert}",  # the node agent's kubelet API is verified
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            # Request-header authentication, which the controller manager and scheduler delegate to.
            f"--requestheader-client-ca-file={pki.ca_cert}",
            f"--requestheader-allowed-names={FRONT_PROXY.name}",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki.client_cert(FRONT_PROXY)}",
            f"--proxy-client-key-file={pki.client_key(FRONT_PROXY)}",
            # The kubernetes Service's endpoints would name the advertised 127.0.0.1, which the
            # reconciler refuses; nothing routes service IPs here anyway.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
        ]

    def _component_flags(self, name: str) -> list[str]:
        kubeconfig = self.kubeconfig(name)
        return [f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}", "--leader-elect=false", "--profiling=false"]

    def _controller_manager_flags(self) -> list[str]:
        return [
            *self._component_flags("controller-manager"),
            f"--controllers={','.join(CONTROLLERS)}",
            "--use-service-account-credentials",
            f"--service-account-private-key-file={self.pki.service_account_key}",
            f"--root-ca-file={self.pki.ca_cert}",
        ]

    def stop(self) -> None:
        """End every process, the last started first, and remove the work directory (when it made it)."""
        while self._processes:
            self._processes.pop().stop(STOP_GRACE)
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _python_path() -> str:
    """The repository first on ``PYTHONPATH``, so ``-m e2e.kube.node`` imports this checkout's ``e2e`` package."""
    existing = os.environ.get("PYTHONPATH")
    return f"{REPO}{os.pathsep}{existing}" if existing else str(REPO)
