"""Gateway replicas as an operator runs them: ``kernelgate serve`` processes on one cluster, behind a front.

Used by ``tests/test_replicas.py`` and the scenarios' ``replicas`` target::

    async with simulated_deployment(tmp_path) as deployment:         # API server, manifests, node agent
        async with replica_group(deployment.kubeconfig, tmp_path) as group:
            group.front.url                                          # the round-robin front (tests/front.py)
            await group.kill(0)                                      # SIGKILL replica 0
            await group.restart(0)                                   # a new replica in its place

:func:`simulated_deployment` runs the simulated API server in this process with
``manifests/enterprise-gateway.yaml`` applied by kubectl (so the gateway's ClusterRole and its
namespace Role are the ones operators apply), asks the TokenRequest API for a token of
``enterprise-gateway-sa`` and writes a kubeconfig holding only that token; a node agent runs
the kernel images as this repository's launcher.  :func:`replica_group` starts each replica as
``kernelgate serve --kubeconfig <that kubeconfig> --port 0`` (this checkout's, run as
``python -m gateway.cli``) in a process of its own, working in the group's directory (its
``HOSTNAME`` and ``POD_NAME`` name it, as in a pod), reads the URL it prints, and puts the
:class:`~tests.front.RoundRobinFront` over them.  Every wait is bounded; leaving the group
stops the front and every replica still running (SIGTERM, then SIGKILL past
:data:`STOP_TIMEOUT`), and keeps each replica's output in ``<work_dir>/<name>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fakes.apiserver.kubeconfig import context_for
from fakes.manifests import MANIFEST
from fakes.memory import MemoryCluster
from fakes.node.kernel_images import kernel_image_map, repository_root
from fakes.node.kubelet import NodeAgent
from fakes.serve import SimulatedCluster
from gateway.aio import OwnedTasks
from tests.front import Address, RoundRobinFront
from tests.kubectlclient import Kubectl
from tests.node import node_agent

GATEWAY_NAMESPACE = "enterprise-gateway"
GATEWAY_ACCOUNT = "enterprise-gateway-sa"
WAIT = 60.0
"""Bound on one wait (a replica's start, a kernel's start, a deletion) on a loaded machine."""
STOP_TIMEOUT = 30.0
"""How long a replica has to exit after SIGTERM before it is killed."""

LEASE_DURATION = 5.0
RENEW_DEADLINE = 3.0
RETRY_PERIOD = 1.0
ACTIVITY_WRITE_INTERVAL = 1.0
SHORT_DUTIES = {
    "EG_LEASE_DURATION": str(LEASE_DURATION),
    "EG_LEASE_RENEW_DEADLINE": str(RENEW_DEADLINE),
    "EG_LEASE_RETRY_PERIOD": str(RETRY_PERIOD),
    "EG_ACTIVITY_WRITE_INTERVAL": str(ACTIVITY_WRITE_INTERVAL),
}
"""The duties lease and activity write-back, short enough for tests (client-go's defaults are 15/10/2 s)."""

REPLICA_ENV = {
    "EG_NAMESPACE": GATEWAY_NAMESPACE,
    "EG_KERNEL_CLUSTER_ROLE": "kernel-controller",
    "EG_KERNEL_LAUNCH_TIMEOUT": str(WAIT),
    "EG_SHUTDOWN_WAIT_TIME": "2",
    # Kernel pods run on this machine: they call their replica back on the loopback address.
    "EG_RESPONSE_IP": "127.0.0.1",
    **SHORT_DUTIES,
}
"""What every replica of a group is started with (a group's ``env`` adds to it)."""
INHERITED_NOT = ("EG_", "KUBERNETES_SERVICE_", "KUBECONFIG", "HOSTNAME", "POD_NAME")
"""This process's variables a replica does not inherit: its settings are the group's alone."""
SERVING = re.compile(r"kernelgate serving at (\S+)")


# --------------------------------------------------------------------------- the cluster


@dataclass
class SimulatedDeployment:
    """The cluster replicas run on: ``admin`` sees it as its administrator, ``kubeconfig`` is the gateway's."""

    cluster: SimulatedCluster
    admin: MemoryCluster
    kubeconfig: Path
    agent: NodeAgent


@contextlib.asynccontextmanager
async def simulated_deployment(work_dir: Path) -> AsyncIterator[SimulatedDeployment]:
    """The simulated API server with the manifests applied and a node agent (see the module docstring)."""
    async with SimulatedCluster(state_dir=work_dir / "state", node_agent=False) as cluster:
        kubectl = Kubectl(cluster.kubeconfig_path, work_dir / "kubectl-cache")
        await kubectl("apply", "-f", str(MANIFEST))
        token = await kubectl.token(GATEWAY_ACCOUNT, GATEWAY_NAMESPACE)
        source = await asyncio.to_thread(cluster.write_kubeconfig, None, gateway=token)
        kubeconfig = await asyncio.to_thread(gateway_kubeconfig, source, context_for("gateway"),
                                             work_dir / "gateway.kubeconfig")
        admin = MemoryCluster(cluster.store)
        agent = node_agent(cluster.store, work_dir / "node", images=kernel_image_map(), api_server_url=cluster.url)
        await agent.start()
        try:
            yield SimulatedDeployment(cluster, admin, kubeconfig, agent)
        finally:
            await agent.stop()
            await admin.close()


def gateway_kubeconfig(source: Path, context: str, path: Path) -> Path:
    """Write to ``path`` the kubeconfig of ``source`` reduced to ``context`` (made current) and its user.

    An operator gives the gateway a kubeconfig with its own credentials only, so nothing it does can
    borrow the administrator's.  Blocking: call it in a thread.
    """
    document = yaml.safe_load(source.read_text(encoding="utf-8"))
    chosen = next(c for c in document["contexts"] if c["name"] == context)
    document["contexts"] = [chosen]
    document["users"] = [u for u in document["users"] if u["name"] == chosen["context"]["user"]]
    document["current-context"] = context
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        yaml.safe_dump(document, stream, sort_keys=False)
    return path


# --------------------------------------------------------------------------- one replica


CODE_ROOT = repository_root()
"""The checkout whose gateway the replicas run (first on their ``PYTHONPATH``)."""
KERNELGATE = [sys.executable, "-m", "gateway.cli"]
"""``kernelgate`` (the console script's entry point, ``gateway.cli:main``), run by this interpreter."""


class ReplicaProcess:
    """One ``kernelgate serve`` process; its output (stdout and stderr, merged) is kept in :attr:`output`."""

    def __init__(self, name: str, kubeconfig: Path, env: Mapping[str, str], work_dir: Path) -> None:
        self.name = name
        self.kubeconfig = kubeconfig
        self.work_dir = work_dir
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED_NOT)}
        path = os.pathsep.join(p for p in (str(CODE_ROOT), inherited.get("PYTHONPATH", "")) if p)
        self.env = {**inherited, **REPLICA_ENV, **env, "HOSTNAME": name, "POD_NAME": name, "PYTHONPATH": path,
                    "PYTHONUNBUFFERED": "1"}
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        self._chunks: list[str] = []
        self._tasks = OwnedTasks(f"replica {name}")
        self._reader: asyncio.Task[None] | None = None
        self._serving: asyncio.Future[str] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "start() the replica first"
        return self.process.pid

    @property
    def address(self) -> Address:
        host, port = self.url.removeprefix("http://").split("/", 1)[0].rsplit(":", 1)
        return host, int(port)

    @property
    def output(self) -> str:
        return "".join(self._chunks)

    @property
    def output_read(self) -> bool:
        """Whether the output was read to its end (the process closed it)."""
        return self._reader is not None and self._reader.done()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, timeout: float = WAIT) -> None:
        """Start the process and return once it prints the URL it serves; fails with its output otherwise."""
        self._serving = asyncio.get_running_loop().create_future()
        self.process = await asyncio.create_subprocess_exec(
            *KERNELGATE, "serve", "--kubeconfig", str(self.kubeconfig), "--port", "0",
            env=self.env, cwd=self.work_dir, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        self._reader = self._tasks.spawn(self._read(), "output")
        try:
            self.url = await asyncio.wait_for(asyncio.shield(self._serving), timeout)
        except (asyncio.TimeoutError, EOFError) as error:
            self._serving.cancel()  # no URL will come now
            await self.kill()
            how = (f"exited ({self.process.returncode}) before serving" if isinstance(error, EOFError)
                   else f"did not serve within {timeout}s")
            raise AssertionError(f"replica {self.name} {how}:\n{self.output}") from None

    async def _read(self) -> None:
        """Keep the process's output until it closes it (at its exit), and notice the URL it serves."""
        assert self.process is not None and self.process.stdout is not None and self._serving is not None
        while chunk := await self.process.stdout.read(64 * 1024):
            self._chunks.append(chunk.decode(errors="replace"))
            if not self._serving.done():
                found = SERVING.search(self.output)
                if found:
                    self._serving.set_result(found.group(1))
        if not self._serving.done():
            self._serving.set_exception(EOFError("the replica closed its output"))

    async def kill(self) -> None:
        """SIGKILL the process and wait until it is gone and its output is read to the end."""
        await self._end(signal.SIGKILL, WAIT)

    async def stop(self) -> None:
        """SIGTERM, as Kubernetes stops a pod; SIGKILL if it is still running after :data:`STOP_TIMEOUT`."""
        if self.running:
            try:
                await self._end(signal.SIGTERM, STOP_TIMEOUT)
            except asyncio.TimeoutError:
                await self.kill()
        await self._tasks.cancel_all()

    async def _end(self, sig: signal.Signals, timeout: float) -> None:
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            process.send_signal(sig)
        await asyncio.wait_for(process.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), WAIT)

    async def save_output(self, directory: Path) -> None:
        path = directory / f"{self.name}.log"
        await asyncio.to_thread(path.write_text, self.output, encoding="utf-8")


def descendants(pid: int) -> set[int]:
    """The processes below ``pid`` (children, theirs...), read from ``/proc``."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stream:
                stat = stream.read()
        except OSError:
            continue  # ended meanwhile
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def still_running(pids: set[int]) -> set[int]:
    """Those of ``pids`` that are still processes (not yet reaped), read from ``/proc``."""
    return {pid for pid in pids if os.path.exists(f"/proc/{pid}")}


# --------------------------------------------------------------------------- a group behind the front


@dataclass
class ReplicaGroup:
    """Replicas of one gateway and the front over them; replica ``i`` is backend ``i`` of the front."""

    kubeconfig: Path
    env: dict[str, str]
    token: str
    work_dir: Path
    replicas: list[ReplicaProcess] = field(default_factory=list)
    """The current replica behind each backend of the front."""
    front: RoundRobinFront | None = None
    everyone: list[ReplicaProcess] = field(default_factory=list)
    """Every replica the group made, replaced ones included: all are stopped, and their output kept, at the end."""

    @property
    def url(self) -> str:
        assert self.front is not None
        return self.front.url

    def new_replica(self) -> ReplicaProcess:
        replica = ReplicaProcess(f"kernelgate-{len(self.everyone)}", self.kubeconfig, self.env, self.work_dir)
        self.everyone.append(replica)
        return replica

    async def kill(self, index: int) -> ReplicaProcess:
        """SIGKILL replica ``index`` (its connections through the front end with it)."""
        replica = self.replicas[index]
        await replica.kill()
        return replica

    async def restart(self, index: int) -> ReplicaProcess:
        """A new replica in place of replica ``index`` (which must have ended), as a Deployment replaces a pod."""
        assert self.front is not None
        old = self.replicas[index]
        assert not old.running, f"replica {old.name} still runs"
        replica = self.new_replica()
        await replica.start()
        self.replicas[index] = replica
        self.front.set_backend(index, replica.address)
        return replica

    def serving(self, path_part: str) -> int:
        """The replica holding the open front connection whose first line names ``path_part``."""
        assert self.front is not None
        found = [c for c in self.front.connections if c.open and path_part in c.request_line]
        assert len(found) == 1, f"open connections for {path_part}: {found}"
        return found[0].backend

    def index_of(self, identity: str) -> int | None:
        """The replica whose identity (a lease's holder) is ``identity``: its name, or failing that its pid."""
        for index, replica in enumerate(self.replicas):
            if identity == replica.name:
                return index
        for index, replica in enumerate(self.replicas):
            if replica.process is not None and str(replica.pid) in re.split(r"[^0-9]+", identity):
                return index
        return None

    def named(self, identity: str) -> int:
        """:meth:`index_of`, failing when no replica is ``identity``."""
        index = self.index_of(identity)
        assert index is not None, f"no replica is {identity!r}: {[(r.name, r.pid) for r in self.replicas]}"
        return index

    def output(self) -> str:
        """Everything every replica (replaced ones included) printed, each under its name."""
        return "\n".join(f"===== {r.name}\n{r.output}" for r in self.everyone)


@contextlib.asynccontextmanager
async def replica_group(kubeconfig: Path, work_dir: Path, *, count: int = 2, env: Mapping[str, str] | None = None,
                        ) -> AsyncIterator[ReplicaGroup]:
    """``count`` replicas (settings :data:`REPLICA_ENV` plus ``env``) and the front over them."""
    env = dict(env or {})
    token = env.setdefault("EG_AUTH_TOKEN", secrets.token_hex(16))
    group = ReplicaGroup(kubeconfig, env, token, work_dir)
    group.replicas = [group.new_replica() for _ in range(count)]
    try:
        started = await asyncio.gather(*(replica.start() for replica in group.replicas), return_exceptions=True)
        failed = [error for error in started if isinstance(error, BaseException)]
        if failed:
            raise failed[0]
        group.front = RoundRobinFront([replica.address for replica in group.replicas])
        await group.front.start()
        yield group
    finally:
        if group.front is not None:
            await group.front.stop()
        await asyncio.gather(*(replica.stop() for replica in group.everyone))
        for replica in group.everyone:
            await replica.save_output(work_dir)
