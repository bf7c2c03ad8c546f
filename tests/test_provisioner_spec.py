"""The provisioner's pure parts and its files: kernelspec reading, placement choice, pod state reading,
the kernel image's bootstrap script and the kernelspec's launch_kubernetes.py.

No cluster here: the launches themselves are in tests/test_provisioner_lifecycle.py,
tests/test_provisioner_failures.py and tests/test_provisioner_unreliable_cluster.py.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from fakes.node.kernel_images import kernel_image_map, repository_root
from fakes.serve import SimulatedClusterThread
from gateway.cluster.resources import RESOURCES
from gateway.objects.template import SEED_VARIABLES, parse_template
from gateway.provisioner import (
    ImagePullFailed,
    InvalidLaunch,
    LaunchRequest,
    PodFailed,
    ProvisionerSettings,
    Unschedulable,
    is_kubernetes_spec,
    kernel_spec_info,
)
from gateway.provisioner.placement import plan_placement
from gateway.provisioner.podstate import PodProgress
from gateway.provisioner.spec import spark_context_mode

ROOT = repository_root()
SPEC_DIR = ROOT / "kernelspecs" / "python_kubernetes"
BOOTSTRAP = ROOT / "images" / "kernel-py" / "bootstrap-kernel.sh"
KERNEL_ID = "5e755458-a114-4215-96b7-bcb016fc7b62"


# --------------------------------------------------------------------------- the kernelspec


def test_the_python_kubernetes_kernelspec_reads_as_eg_describes_it() -> None:
    import json

    kernel_json = json.loads((SPEC_DIR / "kernel.json").read_text())
    info = kernel_spec_info("python_kubernetes", SPEC_DIR)

    assert kernel_json["display_name"] == "Python on Kubernetes"
    assert is_kubernetes_spec(kernel_json)
    assert (info.language, info.image, info.spark_context_mode, info.interrupt_mode) == (
        "python", "elyra/kernel-py:dev", "none", "signal")
    assert "{connection_file}" in kernel_json["argv"] and "{response_address}" in kernel_json["argv"]
    assert info.template_path == SPEC_DIR / "scripts" / "kernel-pod.yaml"
    template = parse_template(info.template_path.read_text())
    text = info.template_path.read_text()
    assert all(f"${name}" in text for name in SEED_VARIABLES)
    pod_ip = [e for e in template[0]["spec"]["containers"][0]["env"] if e["name"] == "KERNEL_POD_IP"]
    assert pod_ip == [{"name": "KERNEL_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    png = (SPEC_DIR / "logo-64x64.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (64, 64)


@pytest.mark.parametrize(("class_name", "expected"), [
    ("enterprise_gateway.services.processproxies.k8s.KubernetesProcessProxy", True),
    ("my.own.KubernetesProcessProxy", True),
    ("enterprise_gateway.services.processproxies.yarn.YarnClusterProcessProxy", False),
    (None, False),
])
def test_kubernetes_kernelspecs_are_told_by_their_process_proxy_class(class_name: str | None, expected: bool) -> None:
    spec = {"metadata": {"process_proxy": {"class_name": class_name}}} if class_name else {"argv": ["python"]}
    assert is_kubernetes_spec(spec) is expected


def test_image_and_spark_mode_defaults_and_overrides(tmp_path: Path) -> None:
    bare = kernel_spec_info("bare", tmp_path, {"language": "python", "argv": []})
    spark = kernel_spec_info("spark", tmp_path, {
        "argv": ["run.sh", "--RemoteProcessProxy.spark-context-initialization-mode", "lazy"],
        "metadata": {"process_proxy": {"config": {"image_name": "elyra/kernel-spark-py:3.2"}}},
        "env": {"SPARK_HOME": "/opt/spark"}, "interrupt_mode": "message",
    })
    assert (bare.image, bare.spark_context_mode) == ("elyra/kernel-py:dev", "none")
    assert (spark.image, spark.spark_context_mode, spark.interrupt_mode) == ("elyra/kernel-spark-py:3.2", "lazy", "message")
    assert spark.env == {"SPARK_HOME": "/opt/spark"}
    assert spark_context_mode(["--RemoteProcessProxy.spark-context-initialization-mode=eager"]) == "eager"


# --------------------------------------------------------------------------- placement


def request(**env: str) -> LaunchRequest:
    return LaunchRequest(kernel_id=KERNEL_ID, username="alice", spec=kernel_spec_info("p", SPEC_DIR), env=env)


def test_placement_modes_follow_eg_precedence() -> None:
    settings = ProvisionerSettings(gateway_namespace="eg", default_service_account="kernels")
    shared = ProvisionerSettings(gateway_namespace="eg", shared_namespace=True)
    pod = f"alice-{KERNEL_ID}"

    own = plan_placement(request(), settings)
    given = plan_placement(request(KERNEL_NAMESPACE="team", KERNEL_SERVICE_ACCOUNT_NAME="team-sa"), shared)
    in_gateway = plan_placement(request(KERNEL_NAMESPACE=""), shared)

    assert (own.namespace, own.service_account, own.owns_namespace, own.pod_name) == (pod, "kernels", True, pod)
    assert (given.namespace, given.service_account, given.owns_namespace) == ("team", "team-sa", False)
    assert (in_gateway.namespace, in_gateway.service_account, in_gateway.owns_namespace) == ("eg", "default", False)


@pytest.mark.parametrize("env", [
    {"KERNEL_NAMESPACE": "Team"}, {"KERNEL_NAMESPACE": "a.b"}, {"KERNEL_NAMESPACE": "n" * 64},
    {"KERNEL_NAMESPACE": "team\nx"}, {"KERNEL_SERVICE_ACCOUNT_NAME": "Not Valid"},
])
def test_names_kubernetes_would_refuse_are_bad_requests(env: dict[str, str]) -> None:
    with pytest.raises(InvalidLaunch) as refused:
        plan_placement(request(**env), ProvisionerSettings())
    assert refused.value.status == 400


# --------------------------------------------------------------------------- reading pod state


def pod_version(uid: str = "u1", *, phase: str = "Pending", waiting: str | None = None, terminated: dict | None = None,
                conditions: list | None = None, ip: str | None = None) -> dict:
    state = {"waiting": {"reason": waiting, "message": "not found"}} if waiting else {}
    if terminated is not None:
        state = {"terminated": terminated}
    status: dict = {"phase": phase, "conditions": conditions or []}
    if state:
        status["containerStatuses"] = [{"name": "k", "image": "img:1", "state": state}]
    if ip:
        status["podIP"] = ip
    return {"metadata": {"name": "k", "namespace": "ns", "uid": uid}, "spec": {"nodeName": "node-1"}, "status": status}


@pytest.mark.parametrize(("version", "error", "words"), [
    (pod_version(waiting="ErrImagePull"), ImagePullFailed, "cannot pull image img:1: ErrImagePull"),
    (pod_version(waiting="ImagePullBackOff"), ImagePullFailed, "ImagePullBackOff"),
    (pod_version(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                              "message": "0/1 nodes are available"}]), Unschedulable, "0/1 nodes are available"),
    (pod_version(phase="Failed", terminated={"exitCode": 137, "reason": "OOMKilled"}), PodFailed,
     "exited with code 137 (OOMKilled)"),
    (pod_version(phase="Succeeded", terminated={"exitCode": 0, "reason": "Completed"}), PodFailed, "code 0"),
])
def test_a_pod_that_cannot_start_is_a_failure_naming_its_cause(version: dict, error: type, words: str) -> None:
    progress = PodProgress("ns", "k", "u1")
    progress.observe(version)

    failure = progress.failure()

    assert isinstance(failure, error) and words in failure.message and "pod k in namespace ns" in failure.message


def test_a_pending_pod_is_described_and_a_vanished_one_fails() -> None:
    progress = PodProgress("ns", "k", "u1")
    progress.observe(None)
    assert progress.failure() is None and progress.describe() == "not seen by the gateway yet"
    progress.observe(pod_version(waiting="ContainerCreating"))
    assert progress.failure() is None and progress.describe() == "still Pending (ContainerCreating)"
    progress.observe(pod_version(phase="Running", ip="10.1.2.3"))
    assert progress.pod_ip() == "10.1.2.3"
    progress.observe(pod_version("u2"))  # another pod took the name: ours is gone
    assert isinstance(progress.failure(), PodFailed) and "was deleted" in progress.failure().message


# --------------------------------------------------------------------------- the kernel image


def run_bootstrap(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run bootstrap-kernel.sh with a stand-in ``python`` that prints the arguments it was given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stand_in = bin_dir / "python"
    stand_in.write_text('#!/bin/sh\nfor a in "$@"; do echo "ARG $a"; done\n')
    stand_in.chmod(0o755)
    return subprocess.run(["sh", str(BOOTSTRAP)], env={"PATH": f"{bin_dir}:/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=30)


def test_bootstrap_runs_the_launcher_for_python(tmp_path: Path) -> None:
    done = run_bootstrap(tmp_path, KERNEL_LANGUAGE="Python", KERNEL_RESPONSE_KEY="SECRET-KEY",
                         KERNEL_LAUNCH_TIMEOUT="45", SPARK_CONTEXT_INITIALIZATION_MODE="none")

    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:6] == ["ARG -m", "ARG gateway.launcher", "ARG --spark-context-initialization-mode",
                                           "ARG none", "ARG --response-timeout", "ARG 45"]
    assert "SECRET-KEY" not in done.stdout + done.stderr


@pytest.mark.parametrize("env", [
    {"KERNEL_LANGUAGE": "scala-SECRET-VALUE"},
    {"KERNEL_LANGUAGE": "python", "SPARK_CONTEXT_INITIALIZATION_MODE": "SECRET-VALUE"},
])
def test_bootstrap_refuses_what_it_cannot_run_without_echoing_values(tmp_path: Path, env: dict[str, str]) -> None:
    done = run_bootstrap(tmp_path, **env)

    assert done.returncode == 1 and "bootstrap-kernel.sh:" in done.stderr
    assert "SECRET-VALUE" not in done.stdout + done.stderr and "ARG" not in done.stdout


def test_the_simulated_node_runs_kernel_images_as_the_bootstrap_script() -> None:
    images = kernel_image_map()
    for image in ("elyra/kernel-py:dev", "docker.io/elyra/kernel-py:3.2.3", "kernelgate/kernel-py:0.1"):
        spec = images.resolve(image)
        assert spec is not None and spec.argv(["/etc/bootstrap-kernel.sh"], None) == [str(BOOTSTRAP)]
        assert spec.env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert images.resolve("elyra/kernel-r:dev") is None


# --------------------------------------------------------------------------- launch_kubernetes.py


def test_launch_kubernetes_renders_the_pod_and_keeps_client_values_in_their_field(tmp_path: Path) -> None:
    kernel_id = str(uuid.uuid4())
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERNEL_")}
    env.update(KERNEL_ID=kernel_id, KERNEL_USERNAME="alice", KERNEL_NAMESPACE="team",
               KERNEL_EXTRA="x\nmetadata: {name: evil}\n")
    done = subprocess.run(
        [sys.executable, str(SPEC_DIR / "scripts" / "launch_kubernetes.py"), "conn.json",
         "--RemoteProcessProxy.response-address", "10.0.0.5:8877",
         "--RemoteProcessProxy.spark-context-initialization-mode", "none"],
        env=env, capture_output=True, text=True, timeout=60,
    )

    assert done.returncode == 0, done.stderr
    [pod] = list(yaml.safe_load_all(done.stdout))
    assert pod["metadata"]["name"] == f"alice-{kernel_id}" and pod["metadata"]["namespace"] == "team"
    assert pod["metadata"]["labels"]["kernel_id"] == kernel_id and pod["spec"]["restartPolicy"] == "Never"
    values = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert values["KERNEL_EXTRA"] == "x\nmetadata: {name: evil}\n"
    assert values["RESPONSE_ADDRESS"] == values["EG_RESPONSE_ADDRESS"] == "10.0.0.5:8877"


def test_launch_kubernetes_create_makes_the_kernel_pod_through_the_current_kubeconfig(tmp_path: Path) -> None:
    kernel_id = str(uuid.uuid4())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERNEL_", "KUBERNETES_"))}
    with SimulatedClusterThread(node_agent=False, state_dir=tmp_path) as cluster:
        env.update(KUBECONFIG=str(cluster.kubeconfig_path), KERNEL_ID=kernel_id, KERNEL_USERNAME="alice",
                   KERNEL_NAMESPACE="default")
        done = subprocess.run(
            [sys.executable, str(SPEC_DIR / "scripts" / "launch_kubernetes.py"), "conn.json",
             "--RemoteProcessProxy.response-address", "10.0.0.5:8877", "--create"],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr

        async def read_pod() -> dict:
            return cluster.store.get(RESOURCES["pods"], "default", f"alice-{kernel_id}")

        pod = cluster.call(read_pod)  # the store belongs to the cluster's own loop

    assert f"pod/alice-{kernel_id} created in namespace default" in done.stdout
    assert pod["metadata"]["labels"]["kernel_id"] == kernel_id
    assert pod["spec"]["restartPolicy"] == "Never"
