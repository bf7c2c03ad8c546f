"""``kernelgate cluster``: the foreground simulated cluster an operator points kubectl at.

Runs the real command as a subprocess, uses the KUBECONFIG it prints, and
checks that SIGTERM stops it cleanly with no pod process left behind.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys

import pytest

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

TIMEOUT = 60


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cluster_command_serves_kubectl_and_stops_cleanly_on_sigterm(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "cluster", "--state-dir", str(tmp_path / "state"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        kubeconfig = None
        while kubeconfig is None:
            line = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()
            assert line, "kernelgate cluster exited before printing its KUBECONFIG"
            if line.startswith("export KUBECONFIG="):
                kubeconfig = line.strip().split("=", 1)[1]
        assert kubeconfig == str(tmp_path / "state" / "kubeconfig")
        env = {**os.environ, "KUBECONFIG": kubeconfig, "KUBECACHEDIR": str(tmp_path / "cache")}

        pid_file = tmp_path / "pod.pid"
        # "$$$$" reaches the shell as "$$": Kubernetes expands "$$" in a command to "$"
        code, out, err = await _run(
            "kubectl", "run", "sleeper", "--image=busybox", "--restart=Never", "--",
            "sh", "-c", f"echo $$$$ > {pid_file}; exec sleep 300", env=env,
        )
        assert code == 0, err
        code, _, err = await _run("kubectl", "wait", "--for=condition=Ready", "pod/sleeper", "--timeout=30s", env=env)
        assert code == 0, err
        pod_pid = int(pid_file.read_text())
        os.kill(pod_pid, 0)  # the pod's process runs

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(pod_pid, 0)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
