"""The processes a kernel-start benchmark runs and reads: the simulated cluster, the gateway, kernel pods.

* :class:`ClusterProcess`: ``kernelgate cluster`` (API server and, unless told otherwise, a node
  agent running kernel pods as local processes) in a child process, as a cluster runs apart from
  its gateway;
* :class:`GatewayProcess`: ``kernelgate serve --kubeconfig`` on it, in a child process of its own
  (``bench/gatewayproc.py``, which also counts the gateway's API requests), so that its CPU and
  memory are its own;
* ``/proc`` readings: a process's resident memory and CPU time, and the processes of one kernel pod
  (those whose environment names the kernel's id).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0


def rss_kib(pid: int) -> int:
    """Resident memory of a process, in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_split(pid: int) -> tuple[float, float]:
    """CPU time of a process, and that of the children it has waited for (``utime + stime``,
    ``cutime + cstime``; 0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    return cpu_split(pid)[0]


def run_seconds(pid: int) -> float:
    """Time the process's live threads have run on a CPU so far, to the nanosecond (``schedstat``).

    ``/proc/<pid>/stat`` counts in clock ticks (10 ms): over six starts of about 10 ms of CPU each,
    a tick is a sixth of the figure.  A thread that ended takes its time with it, so this is for
    windows of a process whose threads live on (the gateway's: its loop, ZeroMQ's, the executor's).
    Falls back to :func:`cpu_seconds` where the kernel keeps no scheduler statistics.
    """
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue  # a thread that ended meanwhile
    except OSError:
        return cpu_seconds(pid)
    return total / 1e9 if total else cpu_seconds(pid)


def pids_with_env(name: str, value: str) -> list[int]:
    """Live processes whose environment holds ``name=value`` (a kernel pod's: ``KERNEL_ID=<id>``)."""
    wanted = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and wanted in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _read_line_until(stream: IO[str], prefix: str, what: str, log: Path) -> str:
    for line in stream:
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
    raise RuntimeError(f"{what} did not start:\n" + "\n".join(tail))


class ClusterProcess:
    """``kernelgate cluster`` in a child process (stopped with :meth:`stop`)."""

    def __init__(self, *, node_agent: bool = True, images: Path | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="kernelgate-bench-cluster-")
        argv = [sys.executable, "-m", "gateway.cli", "--log-level", "WARNING", "cluster", "--state-dir", self._dir.name]
        if not node_agent:
            argv.append("--no-node-agent")
        if images is not None:  # an image map file added to the node's images (bench/egcluster.py's)
            argv += ["--images", str(images)]
        log = Path(self._dir.name) / "cluster.log"
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        self.kubeconfig = _read_line_until(self.proc.stdout, "export KUBECONFIG=", "the simulated cluster", log)

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()
        self._dir.cleanup()


class GatewayProcess:
    """``kernelgate serve`` on ``kubeconfig`` in a child process (stopped with :meth:`stop`)."""

    def __init__(self, kubeconfig: str, env: dict[str, str] | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="kernelgate-bench-gateway-")
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("EG_", "KERNEL_", "KUBECONFIG"))}
        child_env.update({"EG_RESPONSE_IP": "127.0.0.1", "HOSTNAME": "bench-gateway", "PYTHONPATH": str(ROOT)})
        child_env.update(env or {})
        argv = [sys.executable, str(ROOT / "bench" / "gatewayproc.py"), "--log-level", "WARNING", "serve",
                "--kubeconfig", kubeconfig, "--port", "0"]
        log = Path(self._dir.name) / "gateway.log"
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log, text=True, cwd=self._dir.name,
                                     env=child_env)
        assert self.proc.stdout is not None
        self.url = _read_line_until(self.proc.stdout, "kernelgate serving at ", "the gateway", log).split()[0]

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def api_requests(self) -> int:
        """How many Kubernetes API requests the gateway has sent so far."""
        return int((await self.counters())["api_requests"])

    async def counters(self) -> dict:
        """The gateway's API requests so far (``api_requests``; ``lease_requests`` of them renewed its lease), and
        its informers' first-list times (``informer_sync_s``): it answers SIGUSR1 on stdout."""
        assert self.proc.stdout is not None
        self.proc.send_signal(signal.SIGUSR1)
        while True:  # skip what the gateway itself prints on stdout
            line = await asyncio.to_thread(self.proc.stdout.readline)
            if not line:
                raise RuntimeError("the gateway exited")
            if line.startswith('{"api_requests"'):
                return dict(json.loads(line))

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()
        self._dir.cleanup()


def stop_process(proc: subprocess.Popen) -> None:
    """End a child process of the benchmark: SIGTERM, then SIGKILL if it has not exited within a minute."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
