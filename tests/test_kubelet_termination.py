"""How the node agent ends its pods' processes, with real processes watched through /proc.

A deleted pod's container gets SIGTERM, then SIGKILL once its grace period
ends (at once when deleted outright); an OOM kill; containers an earlier
agent lost; a pod deleted while the agent's watch was too far behind; and the
agent's own stop, on tests/kubeletharness.py's node.  A process's end is
awaited through its pidfd.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.auth.identity import node_user
from fakes.memory import MemoryCluster
from fakes.node.context import OOM_ANNOTATION
from fakes.node.kubelet import NodeAgent
from fakes.state.store import Store
from gateway.cluster.interface import Cluster
from gateway.cluster.resources import RESOURCES
from tests.kubeletharness import NS, admin_fixture, agent_fixture, pod, store_fixture  # noqa: F401 (fixtures)
from tests.node import FAST
from tests.podwait import (
    container_running,
    container_state,
    phase_is,
    wait_for_pod,
    wait_for_pod_deleted,
)


def descendants() -> set[int]:
    """Live (non-zombie) processes descended from this test process, read from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X"):
            parents[int(entry)] = int(fields[1])
    found, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


class ReadySignal:
    """A FIFO a container writes a line to once it is ready (e.g. its TERM trap is set); the test awaits it.

    Opened read-write and non-blocking, so the container's write never blocks and the
    test is woken by the event loop when the line arrives, with no polling.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / "ready.fifo"
        os.mkfifo(self.path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)

    async def wait(self, timeout: float = 10.0) -> str:
        loop = asyncio.get_running_loop()
        arrived: asyncio.Future[None] = loop.create_future()
        loop.add_reader(self._fd, lambda: arrived.done() or arrived.set_result(None))
        try:
            await asyncio.wait_for(arrived, timeout)
        finally:
            loop.remove_reader(self._fd)
        return os.read(self._fd, 4096).decode()

    def close(self) -> None:
        os.close(self._fd)


@pytest.fixture
def ready(tmp_path: Path) -> Iterator[ReadySignal]:
    signal_ = ReadySignal(tmp_path)
    yield signal_
    signal_.close()


async def all_exit(pids: set[int], timeout: float = 5.0) -> bool:
    """Whether every process in ``pids`` exits within ``timeout`` (awaited through pidfds, not polled)."""
    loop = asyncio.get_running_loop()
    fds, waiters = [], []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            continue
        exited: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fds[-1], lambda f=exited: f.done() or f.set_result(None))
        waiters.append(exited)
    try:
        if waiters:
            _, pending = await asyncio.wait(waiters, timeout=timeout)
            return not pending
        return True
    finally:
        for fd in fds:
            loop.remove_reader(fd)
            os.close(fd)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


# --------------------------------------------------------------------------- deletion


async def test_deleted_pod_gets_sigterm_then_disappears(
    agent: NodeAgent, admin: Cluster, tmp_path: Path, ready: ReadySignal
) -> None:
    marker = tmp_path / "terminated"
    script = f"trap 'echo TERM > {marker}; exit 0' TERM; echo trapped > {ready.path}; sleep 60 & wait"
    await admin.create("pods", pod("graceful", ["sh", "-c", script]), namespace=NS)
    assert await ready.wait() == "trapped\n"

    await admin.delete("pods", "graceful", namespace=NS, grace_period_seconds=30)
    await wait_for_pod_deleted(admin, NS, "graceful", timeout=10)  # well before the 30s grace period ends

    assert marker.read_text().strip() == "TERM"
    events = (await admin.list("events", namespace=NS, field_selector="involvedObject.name=graceful"))["items"]
    assert any(e["reason"] == "Killing" and e["message"] == "Stopping container main" for e in events)


async def test_process_ignoring_sigterm_is_killed_after_the_grace_period(
    agent: NodeAgent, admin: Cluster, ready: ReadySignal
) -> None:
    script = f"trap '' TERM; echo ignoring > {ready.path}; sleep 60"
    created = await admin.create("pods", pod("stubborn", ["sh", "-c", script]), namespace=NS)
    await ready.wait()
    running = await wait_for_pod(admin, NS, "stubborn", container_running())
    pids = descendants()

    await admin.delete("pods", "stubborn", namespace=NS, grace_period_seconds=1)
    final = await wait_for_pod(admin, NS, "stubborn", lambda p: "terminated" in container_state(p),
                               resource_version=running["metadata"]["resourceVersion"])
    await wait_for_pod_deleted(admin, NS, "stubborn")

    term = container_state(final)["terminated"]
    assert term["exitCode"] == 128 + signal.SIGKILL
    assert final["status"]["phase"] == "Failed"
    assert created["metadata"]["uid"] == final["metadata"]["uid"]
    assert pids and not any(alive(pid) for pid in pids)


async def test_pod_deleted_outright_has_its_processes_killed_at_once(
    agent: NodeAgent, admin: Cluster, ready: ReadySignal
) -> None:
    script = f"trap '' TERM; echo ignoring > {ready.path}; sleep 60"
    await admin.create("pods", pod("forced", ["sh", "-c", script], terminationGracePeriodSeconds=30), namespace=NS)
    await ready.wait()
    await wait_for_pod(admin, NS, "forced", container_running())
    pids = descendants()

    await admin.delete("pods", "forced", namespace=NS, grace_period_seconds=0)

    assert pids and await all_exit(pids, timeout=5)  # not after the pod's 30s grace period


# --------------------------------------------------------------------------- OOM


async def test_oom_kill_reports_oomkilled_137(agent: NodeAgent, admin: Cluster) -> None:
    await admin.create("pods", pod("hungry", ["sleep", "60"]), namespace=NS)
    await wait_for_pod(admin, NS, "hungry", container_running())

    assert agent.oom_kill(NS, "hungry")
    done = await wait_for_pod(admin, NS, "hungry", phase_is("Failed"))

    term = container_state(done)["terminated"]
    assert (term["exitCode"], term["reason"]) == (137, "OOMKilled")


async def test_oom_annotation_kills_the_container_as_oomkilled(agent: NodeAgent, admin: Cluster) -> None:
    await admin.create("pods", pod("annotated", ["sleep", "60"]), namespace=NS)
    await wait_for_pod(admin, NS, "annotated", container_running())

    await admin.patch("pods", "annotated", {"metadata": {"annotations": {OOM_ANNOTATION: "1"}}}, namespace=NS)
    done = await wait_for_pod(admin, NS, "annotated", phase_is("Failed"))

    assert container_state(done)["terminated"]["reason"] == "OOMKilled"


# --------------------------------------------------------------------------- the agent restarting, relisting, stopping


async def test_a_new_agent_reports_containers_lost_with_the_old_one(
    store: Store, admin: Cluster, tmp_path: Path
) -> None:
    first = NodeAgent(MemoryCluster(store, node_user("node-1")), store=store, work_dir=tmp_path / "a", backoff=FAST)
    await first.start()
    try:
        await admin.create("pods", pod("orphan", ["sleep", "60"]), namespace=NS)
        running = await wait_for_pod(admin, NS, "orphan", container_running())
    finally:
        await first.stop()
    second = NodeAgent(MemoryCluster(store, node_user("node-1")), store=store, work_dir=tmp_path / "b", backoff=FAST)
    await second.start()
    try:
        failed = await wait_for_pod(admin, NS, "orphan", phase_is("Failed"))
    finally:
        await second.stop()

    term = container_state(failed)["terminated"]
    assert (term["exitCode"], term["reason"]) == (137, "ContainerStatusUnknown")
    assert failed["status"]["podIP"] == running["status"]["podIP"]


async def test_agent_relists_after_its_watch_falls_too_far_behind(
    tmp_path: Path, ready: ReadySignal
) -> None:
    store = Store(watch_window=3)
    admin = MemoryCluster(store)
    node = NodeAgent(MemoryCluster(store, node_user("node-1")), store=store, work_dir=tmp_path / "node", backoff=FAST)
    await node.start()
    try:
        await admin.create("pods", pod("old", ["sh", "-c", f"echo up > {ready.path}; sleep 60"]), namespace=NS)
        await ready.wait()
        await wait_for_pod(admin, NS, "old", container_running())
        pids = descendants()

        # While the agent's watch is down, more changes than the store keeps: resuming gets 410 Gone.
        # The store's methods are synchronous, so nothing else runs before they are all done.
        pods = RESOURCES["pods"]
        store.drop_watches("pods")
        store.delete(pods, NS, "old", grace_period_seconds=0)
        for i in range(4):
            store.create(pods, pod(f"new-{i}", ["true"]), NS)

        for i in range(4):
            await wait_for_pod(admin, NS, f"new-{i}", phase_is("Succeeded"))
        assert await all_exit(pids)  # the relist showed "old" gone, so its process was killed
    finally:
        await node.stop()
    assert store.open_watches("pods") == 0


async def test_stop_leaves_no_process_alive(store: Store, admin: Cluster, tmp_path: Path, ready: ReadySignal) -> None:
    node = NodeAgent(MemoryCluster(store, node_user("node-1")), store=store, work_dir=tmp_path / "node",
                     backoff=FAST, shutdown_grace_seconds=0.5)
    await node.start()
    try:
        # A child that ignores SIGTERM, so stop() must escalate to SIGKILL.
        script = f"trap '' TERM; sleep 60 & echo started > {ready.path}; wait"
        await admin.create("pods", pod("stays", ["sh", "-c", script]), namespace=NS)
        await admin.create("pods", pod("plain", ["sleep", "60"]), namespace=NS)
        await ready.wait()
        for name in ("stays", "plain"):
            await wait_for_pod(admin, NS, name, container_running())
        before = descendants()
    finally:
        await node.stop()

    assert before
    assert not descendants()
    assert not any(alive(pid) for pid in before)
