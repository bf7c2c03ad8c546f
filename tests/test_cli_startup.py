"""``kernelgate serve`` at start, as a process: it says which cluster it uses and why, and a start that cannot
succeed (a cluster that cannot be used, a port in use) is one line on stderr and exit status 1, no traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

KERNELGATE = [sys.executable, "-m", "gateway.cli", "serve"]
TIMEOUT = 120


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port nothing accepts on (bound, never listening, while the test runs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A local port another program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def dead_kubeconfig(path: Path, port: int) -> Path:
    """A kubeconfig whose API server is gone (nothing listens at its address any more)."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                  "insecure-skip-tls-verify": True}}],
        "users": [{"name": "someone", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "someone"}}],
    }))
    return path


def serve(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``kernelgate serve`` to its end, in an environment without the caller's cluster or gateway settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "EG_", "KERNEL_"))}
    return subprocess.run([*KERNELGATE, *args], cwd=cwd, env={**clean, **env}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=TIMEOUT)


def said(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What the gateway itself told its user on stderr (its log lines aside)."""
    return [line for line in result.stderr.splitlines() if line.startswith("kernelgate:")]


def test_a_kubeconfig_of_a_gone_cluster_is_named_then_one_line_of_error(tmp_path: Path, closed_port: int) -> None:
    kubeconfig = dead_kubeconfig(tmp_path / "kubeconfig", closed_port)
    result = serve("--port", "0", "--kubeconfig", str(kubeconfig), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    which, error = said(result)
    assert which == f"kernelgate: cluster: the cluster of {kubeconfig} (named by --kubeconfig)"
    assert error.startswith(f"kernelgate: cannot use the cluster of {kubeconfig} (API server https://127.0.0.1:"
                            f"{closed_port}): cannot connect to the API server")
    assert "Retrying" not in result.stderr  # the client library's retries are not the user's business


def test_a_kubeconfig_left_in_the_environment_is_named_as_the_reason(tmp_path: Path, closed_port: int) -> None:
    kubeconfig = dead_kubeconfig(tmp_path / "kubeconfig", closed_port)
    result = serve("--port", "0", cwd=tmp_path, KUBECONFIG=str(kubeconfig))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    which, error = said(result)
    assert which == (f"kernelgate: cluster: the cluster of {kubeconfig} (named by the KUBECONFIG environment "
                     "variable; unset it for the embedded simulated cluster)")
    assert error.startswith(f"kernelgate: cannot use the cluster of {kubeconfig}")


def test_an_unreadable_kubeconfig_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "kubeconfig"
    result = serve("--port", "0", "--kubeconfig", str(missing), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert said(result)[-1].startswith(f"kernelgate: cannot read the configuration of the cluster of {missing}: ")


def test_in_a_pod_the_service_account_is_the_reason(tmp_path: Path) -> None:
    # The pod's service account files are not there outside a pod: the in-cluster configuration cannot be read.
    result = serve("--port", "0", cwd=tmp_path, KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT="1")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    which, error = said(result)
    assert which == ("kernelgate: cluster: this pod's cluster (in-cluster config) (KUBERNETES_SERVICE_HOST is set: "
                     "running in a pod, as its service account)")
    assert error.startswith("kernelgate: cannot read the configuration of this pod's cluster (in-cluster config): ")


def test_a_port_in_use_is_named(tmp_path: Path, taken_port: int) -> None:
    result = serve("--ip", "127.0.0.1", "--port", str(taken_port), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    which, error = said(result)
    assert which == ("kernelgate: cluster: the embedded simulated cluster (no --kubeconfig, no KUBECONFIG and not "
                     "in a pod; kernels run as local processes)")
    assert error == (f"kernelgate: cannot listen on 127.0.0.1:{taken_port} (--ip and --port, or EG_IP and EG_PORT): "
                     "Address already in use")
