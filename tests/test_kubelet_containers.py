"""What a container on the simulated node runs and sees, with real processes.

The command an image and a pod spec make together, the environment (with
Kubernetes' ``$(VAR)`` expansion and values from fields and config maps), a
loopback address of the pod's own, and the logs read back, on
tests/kubeletharness.py's node.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from pathlib import Path

import pytest

from fakes.node.images import ImageMap, ImageSpec, parse_image
from fakes.node.kubelet import NodeAgent
from fakes.node.podenv import expand
from gateway.cluster.interface import Cluster
from tests.kubeletharness import NS, admin_fixture, agent_fixture, pod, store_fixture  # noqa: F401 (fixtures)
from tests.podwait import container_state, phase_is, wait_for_pod, wait_for_pod_deleted, waiting_reason

# --------------------------------------------------------------------------- images


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


async def test_a_pods_temporary_files_are_its_own_and_go_with_it(store, admin, agent, tmp_path):
    """A kernel's connection file (its signing key) must not outlive its pod in the node's /tmp."""
    script = ("import tempfile, os; fd, path = tempfile.mkstemp(suffix='.json'); os.write(fd, b'key'); "
              "print(path, flush=True)")
    await admin.create("pods", pod("tmpfiles", ["python3", "-c", script], image="python:3.11"), namespace=NS)
    await wait_for_pod(admin, NS, "tmpfiles", phase_is("Succeeded"))
    written = (await admin.read_pod_log("tmpfiles", NS)).strip()
    path = Path(written)
    assert written and await asyncio.to_thread(path.exists), "the file is there while the pod is"
    assert path.parent != Path(tempfile.gettempdir()), "the pod wrote into the node's own /tmp"
    await admin.delete("pods", "tmpfiles", namespace=NS)
    await wait_for_pod_deleted(admin, NS, "tmpfiles")
    await agent.stop()  # every worker has ended, its clean-up done
    assert not await asyncio.to_thread(path.exists) and not await asyncio.to_thread(path.parent.exists)
