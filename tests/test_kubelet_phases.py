"""The phases and container states the node agent reports for its pods, with real processes.

Exit codes, restarts with back-off, init containers, an image that cannot be
pulled, scheduling by node selector, and the node's own registration, on
tests/kubeletharness.py's node.
"""

from __future__ import annotations

from pathlib import Path

from fakes.node.kubelet import NodeAgent
from gateway.cluster.interface import Cluster
from tests.kubeletharness import NS, admin_fixture, agent_fixture, pod, store_fixture  # noqa: F401 (fixtures)
from tests.podwait import (
    condition_is,
    container_state,
    container_status,
    phase_is,
    wait_for_pod,
    waiting_reason,
)

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

# --------------------------------------------------------------------------- scheduling and the node


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

async def test_node_is_registered_ready(agent: NodeAgent, admin: Cluster) -> None:
    node = await admin.get("nodes", "node-1")

    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "node-1"
    assert condition_is("Ready", "True")(node)
