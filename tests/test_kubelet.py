"""The node agent with real processes, over the in-memory cluster, as the node's identity.

Every wait is a watch with a timeout (tests/podwait.py); no test sleeps.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fakes.auth.identity import node_user
from fakes.memory import MemoryCluster
from fakes.node.context import OOM_ANNOTATION
from fakes.node.images import ImageMap, ImageSpec, parse_image
from fakes.node.kubelet import NodeAgent
from fakes.node.podenv import expand
from fakes.state.store import Store
from gateway.cluster.interface import Cluster
from gateway.cluster.resources import RESOURCES
from tests.node import FAST, node_agent
from tests.podwait import (
    condition_is,
    container_running,
    container_state,
    container_status,
    phase_is,
    wait_for_pod,
    wait_for_pod_deleted,
    waiting_reason,
)

NS = "default"


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def admin(store: Store) -> Cluster:
    return MemoryCluster(store)


@pytest.fixture
async def agent(store: Store, tmp_path: Path) -> AsyncIterator[NodeAgent]:
    node = node_agent(store, tmp_path / "node", api_server_url="https://127.0.0.1:6443")
    await node.start()
    yield node
    await node.stop()


def pod(name: str, command: list[str], *, image: str = "busybox", restart: str = "Never", **spec) -> dict:
    container = {"name": "main", "image": image, "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"restartPolicy": restart, "containers": [container], **spec},
    }


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


# --------------------------------------------------------------------------- phases and exit codes


async def test_exit_zero_ends_succeeded_with_completed_state(agent: NodeAgent, admin: Cluster) -> None:
    await admin.create("pods", pod("ok", ["sh", "-c", "exit 0"]), namespace=NS)

    done = await wait_for_pod(admin, NS, "ok", phase_is("Succeeded", "Failed"))

    assert done["status"]["phase"] == "Succeeded"
    assert done["spec"]["nodeName"] == "node-1"
    term = container_state(done)["terminated"]
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    assert term["startedAt"] and term["finishedAt"]
    assert condition_is("Ready", "False", "PodCompleted")(done)
    events = (await admin.list("events", namespace=NS, field_selector="involvedObject.name=ok"))["items"]
    kubelet = {e["reason"]: e for e in events if e["source"]["component"] == "kubelet"}
    assert {"Pulled", "Created", "Started"} <= set(kubelet)
    assert kubelet["Started"]["involvedObject"]["fieldPath"] == "spec.containers{main}"
    assert kubelet["Started"]["type"] == "Normal" and kubelet["Started"]["source"]["host"] == "node-1"


async def test_exit_three_ends_failed_with_error(agent: NodeAgent, admin: Cluster) -> None:
    await admin.create("pods", pod("three", ["sh", "-c", "exit 3"]), namespace=NS)

    done = await wait_for_pod(admin, NS, "three", phase_is("Succeeded", "Failed"))

    assert done["status"]["phase"] == "Failed"
    term = container_state(done)["terminated"]
    assert (term["exitCode"], term["reason"]) == (3, "Error")


async def test_running_pod_reports_ready_with_ip_and_conditions(agent: NodeAgent, admin: Cluster) -> None:
    await admin.create("pods", pod("runner", ["sleep", "60"]), namespace=NS)

    running = await wait_for_pod(admin, NS, "runner", phase_is("Running"))

    status = running["status"]
    assert status["hostIP"] == "127.0.0.1"
    assert status["podIP"] == agent.pod_ip(NS, "runner") and status["podIPs"] == [{"ip": status["podIP"]}]
    cs = container_status(running)
    assert cs["ready"] is True and cs["started"] is True and cs["state"]["running"]["startedAt"]
    assert cs["image"] == "docker.io/library/busybox:latest"
    for ctype in ("Initialized", "Ready", "ContainersReady", "PodScheduled"):
        assert condition_is(ctype, "True")(running), ctype


async def test_missing_command_is_start_error_128(agent: NodeAgent, admin: Cluster) -> None:
    await admin.create("pods", pod("nocmd", ["no-such-command-here"]), namespace=NS)

    done = await wait_for_pod(admin, NS, "nocmd", phase_is("Succeeded", "Failed"))

    assert done["status"]["phase"] == "Failed"
    term = container_state(done)["terminated"]
    assert (term["exitCode"], term["reason"]) == (128, "StartError")
    assert 'exec: "no-such-command-here": executable file not found in $PATH' in term["message"]


async def test_restart_always_restarts_and_backs_off(agent: NodeAgent, admin: Cluster) -> None:
    await admin.create("pods", pod("crashy", ["sh", "-c", "exit 1"], restart="Always"), namespace=NS)

    looping = await wait_for_pod(admin, NS, "crashy", waiting_reason("CrashLoopBackOff"))

    assert looping["status"]["phase"] == "Running"
    cs = container_status(looping)
    assert cs["restartCount"] >= 1
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert "restarting failed container=main pod=crashy_default(" in cs["state"]["waiting"]["message"]
    restarted = await wait_for_pod(admin, NS, "crashy", lambda p: container_status(p)["restartCount"] > cs["restartCount"])
    assert restarted["status"]["phase"] == "Running"


async def test_init_containers_run_to_completion_before_the_main_container(
    agent: NodeAgent, admin: Cluster, tmp_path: Path
) -> None:
    handoff = tmp_path / "handoff"
    first = pod("staged", ["sh", "-c", f"cat {handoff}"])
    first["spec"]["initContainers"] = [
        {"name": "prepare", "image": "busybox", "command": ["sh", "-c", f"echo prepared > {handoff}"]},
    ]
    await admin.create("pods", first, namespace=NS)

    done = await wait_for_pod(admin, NS, "staged", phase_is("Succeeded", "Failed"))

    assert done["status"]["phase"] == "Succeeded"
    (init,) = done["status"]["initContainerStatuses"]
    assert (init["name"], init["state"]["terminated"]["reason"], init["ready"]) == ("prepare", "Completed", True)
    assert await admin.read_pod_log("staged", NS, container="main") == "prepared\n"


async def test_failed_init_container_fails_a_never_restart_pod(agent: NodeAgent, admin: Cluster) -> None:
    broken = pod("blocked", ["true"])
    broken["spec"]["initContainers"] = [{"name": "check", "image": "busybox", "command": ["sh", "-c", "exit 2"]}]
    await admin.create("pods", broken, namespace=NS)

    done = await wait_for_pod(admin, NS, "blocked", phase_is("Succeeded", "Failed"))

    assert done["status"]["phase"] == "Failed"
    assert done["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 2
    assert container_state(done, "main")["waiting"]["reason"] == "PodInitializing"
    assert condition_is("Initialized", "False", "ContainersNotInitialized")(done)


# --------------------------------------------------------------------------- images


async def test_unknown_image_pull_errors_and_stays_pending(agent: NodeAgent, admin: Cluster) -> None:
    created = await admin.create("pods", pod("noimg", ["true"], image="example.com/nothing/here:1.0"), namespace=NS)
    since = created["metadata"]["resourceVersion"]

    pulled = await wait_for_pod(admin, NS, "noimg", waiting_reason("ErrImagePull"), resource_version=since)
    backoff = await wait_for_pod(admin, NS, "noimg", waiting_reason("ImagePullBackOff"),
                                 resource_version=pulled["metadata"]["resourceVersion"])

    assert pulled["status"]["phase"] == backoff["status"]["phase"] == "Pending"
    assert 'Back-off pulling image "example.com/nothing/here:1.0"' in container_state(backoff)["waiting"]["message"]
    events = await admin.list("events", namespace=NS, field_selector="involvedObject.name=noimg")
    reasons = {(e["reason"], e["source"]["component"]) for e in events["items"]}
    assert {("Scheduled", "default-scheduler"), ("Failed", "kubelet"), ("BackOff", "kubelet")} <= reasons


def test_image_map_matches_repositories_tags_and_globs(tmp_path: Path) -> None:
    images = ImageMap.default()
    assert images.resolve("busybox:1.36") is images.resolve("docker.io/library/busybox")
    assert images.resolve("no/such-image") is None

    images.add("elyra/kernel-py:3.2.3", ImageSpec(cmd=["python3", "-m", "exact"]))
    images.add("*/kernel-*", ImageSpec(cmd=["python3", "-m", "glob"]))
    assert images.resolve("elyra/kernel-py:3.2.3").cmd[-1] == "exact"
    assert images.resolve("elyra/kernel-py:dev").cmd[-1] == "glob"

    spec_file = tmp_path / "images.yaml"
    spec_file.write_text("images:\n  registry.local/launcher:\n    entrypoint: [python3]\n    env: {A: b}\n")
    loaded = ImageMap.load(spec_file, base=images)
    assert loaded.resolve("registry.local/launcher:v1") == ImageSpec(entrypoint=["python3"], env={"A": "b"})
    assert images.resolve("registry.local/launcher") is None  # the base is not modified
    assert parse_image("busybox").normalized == "docker.io/library/busybox:latest"


def test_docker_command_semantics() -> None:
    spec = ImageSpec(entrypoint=["entry"], cmd=["default"])
    assert spec.argv(None, None) == ["entry", "default"]
    assert spec.argv(None, ["arg"]) == ["entry", "arg"]
    assert spec.argv(["cmd"], None) == ["cmd"]
    assert spec.argv(["cmd"], ["arg"]) == ["cmd", "arg"]


# --------------------------------------------------------------------------- environment


def test_dollar_expansion_follows_kubernetes_rules() -> None:
    values = {"A": "1", "B": "two"}.get
    assert expand("$(A)-$(B)", values) == "1-two"
    assert expand("$$(A)", values) == "$(A)"
    assert expand("$(MISSING)", values) == "$(MISSING)"
    assert expand("$(A", values) == "$(A"
    assert expand("cost $5 $", values) == "cost $5 $"


async def test_pod_env_reaches_the_process_and_the_agent_env_does_not(
    agent: NodeAgent, admin: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERNELGATE_AGENT_ONLY", "must-not-leak")
    await admin.create("configmaps", {"metadata": {"name": "settings"}, "data": {"color": "blue"}}, namespace=NS)
    env = [
        {"name": "GREETING", "value": "hello"},
        {"name": "DERIVED", "value": "$(GREETING) world"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}}},
    ]
    await admin.create("pods", pod("envy", ["sh", "-c", "env; echo arg=$1", "--", "$(DERIVED)"],
                                   container={"env": env}), namespace=NS)

    await wait_for_pod(admin, NS, "envy", phase_is("Succeeded", "Failed"))
    lines = set((await admin.read_pod_log("envy", NS)).splitlines())

    pod_ip = agent.pod_ip(NS, "envy")
    assert {"GREETING=hello", "DERIVED=hello world", "POD_NAME=envy", f"POD_NAMESPACE={NS}", f"POD_IP={pod_ip}",
            "NODE=node-1", "COLOR=blue", "HOSTNAME=envy", "arg=hello world",
            "KUBERNETES_SERVICE_HOST=127.0.0.1", "KUBERNETES_SERVICE_PORT=6443"} <= lines
    assert not any(line.startswith("KERNELGATE_AGENT_ONLY=") for line in lines)
    assert os.environ.get("HOME") and not any(line.startswith("HOME=") for line in lines)


async def test_missing_configmap_is_a_config_error(agent: NodeAgent, admin: Cluster) -> None:
    env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]
    await admin.create("pods", pod("noconf", ["true"], container={"env": env}), namespace=NS)

    waiting = await wait_for_pod(admin, NS, "noconf", waiting_reason("CreateContainerConfigError"))

    assert container_state(waiting)["waiting"]["message"] == 'configmap "absent" not found'
    assert waiting["status"]["phase"] == "Pending"


# --------------------------------------------------------------------------- network and logs


async def test_each_pod_gets_its_own_bindable_loopback_address(agent: NodeAgent, admin: Cluster) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))  # the host address holds the port the pods will bind
    port = taken.getsockname()[1]
    script = (f"import os, socket; s = socket.socket(); s.bind((os.environ['POD_IP'], {port})); s.listen(); "
              "print('bound', s.getsockname()[0])")
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    try:
        for name in ("net-a", "net-b"):
            await admin.create("pods", pod(name, ["python3", "-c", script], image="python:3.11", container={"env": env}),
                               namespace=NS)
        done = [await wait_for_pod(admin, NS, n, phase_is("Succeeded", "Failed")) for n in ("net-a", "net-b")]
    finally:
        taken.close()

    ips = [p["status"]["podIP"] for p in done]
    assert [p["status"]["phase"] for p in done] == ["Succeeded", "Succeeded"]
    assert len(set(ips)) == 2 and all(ip.startswith("127.") and ip != "127.0.0.1" for ip in ips)
    assert (await admin.read_pod_log("net-a", NS)).strip() == f"bound {ips[0]}"


async def test_host_network_pod_has_the_node_address(agent: NodeAgent, admin: Cluster) -> None:
    await admin.create("pods", pod("hosted", ["true"], hostNetwork=True), namespace=NS)

    done = await wait_for_pod(admin, NS, "hosted", phase_is("Succeeded"))

    assert done["status"]["podIP"] == done["status"]["hostIP"] == "127.0.0.1"


async def test_logs_are_readable_with_tail_lines(agent: NodeAgent, admin: Cluster) -> None:
    await admin.create("pods", pod("talker", ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; echo oops >&2"]),
                       namespace=NS)
    await wait_for_pod(admin, NS, "talker", phase_is("Succeeded"))

    assert await admin.read_pod_log("talker", NS) == "line 1\nline 2\nline 3\nline 4\nline 5\noops\n"
    assert await admin.read_pod_log("talker", NS, tail_lines=2) == "line 5\noops\n"


# --------------------------------------------------------------------------- deletion, OOM, scheduling, stop


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


async def test_node_selector_mismatch_is_unschedulable(agent: NodeAgent, admin: Cluster) -> None:
    await admin.create("pods", pod("picky", ["true"], nodeSelector={"disktype": "ssd"}), namespace=NS)

    pending = await wait_for_pod(admin, NS, "picky", condition_is("PodScheduled", "False", "Unschedulable"))

    assert not pending["spec"].get("nodeName")
    assert pending["status"]["phase"] == "Pending"
    message = next(c["message"] for c in pending["status"]["conditions"] if c["type"] == "PodScheduled")
    assert message.startswith("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.")


async def test_matching_node_selector_is_scheduled(agent: NodeAgent, admin: Cluster) -> None:
    await admin.create("pods", pod("chosen", ["true"], nodeSelector={"kubernetes.io/hostname": "node-1"}),
                       namespace=NS)

    done = await wait_for_pod(admin, NS, "chosen", phase_is("Succeeded"))

    assert done["spec"]["nodeName"] == "node-1"


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


async def test_node_is_registered_ready(agent: NodeAgent, admin: Cluster) -> None:
    node = await admin.get("nodes", "node-1")

    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "node-1"
    assert condition_is("Ready", "True")(node)


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
