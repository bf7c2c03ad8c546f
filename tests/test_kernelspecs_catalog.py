"""The kernelspecs operators deploy: each folder loads, renders a valid kernel pod, and the Spark ones submit correctly.

Also the launcher running a kernel other than its built-in IPython one, given
as a command template (``--kernel-cmd``), which is how the R and Scala images
run IRkernel and almond under the same handshake.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

import pytest
import yaml
from jupyter_client.asynchronous import AsyncKernelClient

from fakes.memory import MemoryCluster
from fakes.node.kernel_images import kernel_image_map
from fakes.state.store import Store
from gateway.cluster.informer import Informer
from gateway.kernels.specs import KernelSpecs
from gateway.objects import kernel_selector
from gateway.objects.pod import kernel_objects
from gateway.objects.template import parse_template
from gateway.provisioner import LaunchRequest, PodFailed, PodProvisioner, ProvisionerSettings, comm
from gateway.provisioner.crypto import GatewayKeys
from gateway.provisioner.response import ResponseListener
from gateway.provisioner.spec import kernel_spec_info
from tests.node import node_agent

kubernetes_validate = pytest.importorskip("kubernetes_validate")  # slow import: once for the module

ROOT = Path(__file__).resolve().parent.parent
KERNELSPECS = ROOT / "kernelspecs"
SPEC_NAMES = sorted(p.name for p in KERNELSPECS.iterdir() if (p / "kernel.json").is_file())
SPARK_NAMES = [name for name in SPEC_NAMES if name.startswith("spark_")]
EXPECTED = {
    "python_kubernetes", "python_tf_kubernetes", "r_kubernetes", "scala_kubernetes",
    "spark_python_kubernetes", "spark_r_kubernetes", "spark_scala_kubernetes",
}
KERNEL_ID = "5e755458-a114-4215-96b7-bcb016fc7b62"
KUBERNETES_VERSION = "1.32"
INSTALL_DIR = "/usr/local/share/jupyter/kernels"
WAIT = 30.0


def kernel_json(name: str) -> dict:
    return json.loads((KERNELSPECS / name / "kernel.json").read_text())


def spark_confs(spark_opts: str) -> dict[str, str]:
    """The ``--conf key=value`` pairs of a SPARK_OPTS string."""
    words = shlex.split(spark_opts)
    return dict(words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "--conf")


def read_png(path: Path) -> tuple[int, int, int, bytes]:
    """Width, height, bytes per pixel and raw scanlines of an 8-bit PNG, checking every chunk's CRC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        offset += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert depth == 8
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]  # grey, RGB, grey+alpha, RGBA
    return width, height, channels, zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))


# --------------------------------------------------------------------------- every kernelspec folder


def test_the_catalog_holds_every_kernelspec_of_the_seed() -> None:
    assert set(SPEC_NAMES) == EXPECTED


def test_the_gateway_offers_every_kernelspec_with_its_logo() -> None:
    specs = KernelSpecs([KERNELSPECS], allowed=None, default_name=None, authorized_users=frozenset(),
                        unauthorized_users=frozenset())
    models = specs.all()
    assert set(models) == EXPECTED and specs.default_name == "python_kubernetes"
    for name, model in models.items():
        assert model["resources"]["logo-64x64"] == f"/kernelspecs/{name}/logo-64x64.png"
        assert specs.resource_path(name, "logo-64x64.png") == KERNELSPECS / name / "logo-64x64.png"


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_kernel_json_has_the_seed_argv_and_process_proxy(name: str) -> None:
    spec = kernel_json(name)
    spark = name in SPARK_NAMES
    assert spec["display_name"] and spec["language"] in {"python", "R", "scala"}
    proxy = spec["metadata"]["process_proxy"]
    assert proxy["class_name"] == "enterprise_gateway.services.processproxies.k8s.KubernetesProcessProxy"
    assert proxy["config"]["image_name"].count(":") == 1
    launcher = [f"{INSTALL_DIR}/{name}/bin/run.sh"] if spark else [
        "python", f"{INSTALL_DIR}/{name}/scripts/launch_kubernetes.py"]
    assert spec["argv"] == [*launcher, "{connection_file}", "--RemoteProcessProxy.response-address",
                            "{response_address}", "--RemoteProcessProxy.spark-context-initialization-mode",
                            "lazy" if spark else "none"]
    script = spec["argv"][0 if spark else 1]
    assert (KERNELSPECS / name / script.removeprefix(f"{INSTALL_DIR}/{name}/")).is_file()

    info = kernel_spec_info(name, KERNELSPECS / name)
    assert info.spark_context_mode == ("lazy" if spark else "none")
    assert info.image == proxy["config"]["image_name"] and info.template_path.is_file()


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_logo_is_a_valid_64x64_png(name: str) -> None:
    width, height, channels, raw = read_png(KERNELSPECS / name / "logo-64x64.png")
    assert (width, height) == (64, 64) and len(raw) == 64 * (1 + 64 * channels)


@pytest.mark.parametrize("name", sorted(EXPECTED - {"python_kubernetes"}))
def test_launch_script_is_the_python_kernelspecs_own(name: str) -> None:
    # Each folder holds a real copy so an operator can copy one kernelspec folder alone.
    shared = (KERNELSPECS / "python_kubernetes" / "scripts" / "launch_kubernetes.py").read_bytes()
    assert (KERNELSPECS / name / "scripts" / "launch_kubernetes.py").read_bytes() == shared, (
        f"copy kernelspecs/python_kubernetes/scripts/launch_kubernetes.py to kernelspecs/{name}/scripts/")


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_template_renders_a_pod_the_kubernetes_schema_accepts(name: str) -> None:
    info = kernel_spec_info(name, KERNELSPECS / name)
    objects = kernel_objects(
        parse_template(info.template_path.read_text(), source=f"{name}/scripts/kernel-pod.yaml"),
        kernel_id=KERNEL_ID, username="alice", namespace="alice-ns", service_account="default",
        image=info.image, env={"KERNEL_CPUS": "1", "KERNEL_MEMORY_LIMIT": "2Gi"},
        launcher_env={"RESPONSE_ADDRESS": "10.1.2.3:8877", "KERNEL_RESPONSE_KEY": "a2V5"},
        language=info.language, response_address="10.1.2.3:8877",
        spark_context_initialization_mode=info.spark_context_mode,
    )
    assert objects.companions == ()
    kubernetes_validate.validate(objects.pod, KUBERNETES_VERSION, strict=True)

    container = objects.pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["image"] == info.image
    assert env["KERNEL_LANGUAGE"] == info.language and env["SPARK_CONTEXT_INITIALIZATION_MODE"] == info.spark_context_mode
    assert objects.pod["metadata"]["labels"] == {"app": "enterprise-gateway", "component": "kernel",
                                                 "kernel_id": KERNEL_ID}
    # Every template leaves the command to the image: its own bootstrap (this gateway's or EG 3's) runs,
    # and Spark sets the driver's and executors' arguments itself.
    assert "command" not in container and "args" not in container


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_a_kernelspec_folder_copied_alone_renders_its_own_pod(name: str, tmp_path: Path) -> None:
    shutil.copytree(KERNELSPECS / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERNEL_")}
    env.update(KERNEL_ID=KERNEL_ID, KERNEL_USERNAME="alice", KERNEL_NAMESPACE="team")
    done = subprocess.run(
        [sys.executable, str(tmp_path / name / "scripts" / "launch_kubernetes.py"), "conn.json",
         "--RemoteProcessProxy.response-address", "10.0.0.5:8877"],
        env=env, capture_output=True, text=True, timeout=60,
    )

    assert done.returncode == 0, done.stderr
    [pod] = list(yaml.safe_load_all(done.stdout))
    spec = kernel_json(name)
    container = pod["spec"]["containers"][0]
    assert container["image"] == spec["metadata"]["process_proxy"]["config"]["image_name"]
    assert {"name": "KERNEL_LANGUAGE", "value": spec["language"]} in container["env"]
    assert pod["metadata"]["name"] == f"alice-{KERNEL_ID}" and pod["metadata"]["namespace"] == "team"


# --------------------------------------------------------------------------- Spark kernelspecs


@pytest.mark.parametrize("name", SPARK_NAMES)
def test_spark_opts_submit_in_cluster_mode_with_the_kernel_labels_and_images(name: str) -> None:
    spec = kernel_json(name)
    opts = spec["env"]["SPARK_OPTS"]
    words = shlex.split(opts)
    assert words[:4] == ["--master", "k8s://https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}",
                         "--deploy-mode", "cluster"]
    assert words[words.index("--name") + 1] == "${KERNEL_USERNAME}-${KERNEL_ID}"
    confs = spark_confs(opts)
    executor_image = spec["metadata"]["process_proxy"]["config"]["image_name"]
    assert confs | {
        "spark.kubernetes.driver.label.app": "enterprise-gateway",
        "spark.kubernetes.driver.label.kernel_id": "${KERNEL_ID}",
        "spark.kubernetes.driver.label.component": "kernel",
        "spark.kubernetes.executor.label.app": "enterprise-gateway",
        "spark.kubernetes.executor.label.kernel_id": "${KERNEL_ID}",
        "spark.kubernetes.executor.label.component": "worker",
        "spark.kubernetes.driver.docker.image": "${EG_KUBERNETES_KERNEL_IMAGE}",
        "spark.kubernetes.container.image": "${EG_KUBERNETES_KERNEL_IMAGE}",
        "spark.kubernetes.executor.docker.image": executor_image,
        "spark.kubernetes.executor.container.image": executor_image,
        "spark.kubernetes.submission.waitAppCompletion": "false",
    } == confs


@pytest.mark.parametrize("name", SPARK_NAMES)
def test_run_sh_is_valid_bash_and_shared(name: str) -> None:
    run_sh = KERNELSPECS / name / "bin" / "run.sh"
    assert os.access(run_sh, os.X_OK)
    assert subprocess.run(["bash", "-n", str(run_sh)], capture_output=True, timeout=30).returncode == 0
    assert run_sh.read_bytes() == (KERNELSPECS / SPARK_NAMES[0] / "bin" / "run.sh").read_bytes()


def run_sh(name: str, tmp_path: Path, *, spark_home: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a Spark kernelspec's run.sh with a stand-in spark-submit that prints its arguments and the pod template."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KERNEL_", "EG_", "SPARK_", "KUBERNETES_"))}
    base.update(SPARK_OPTS=kernel_json(name)["env"]["SPARK_OPTS"], KERNEL_ID=KERNEL_ID, KERNEL_USERNAME="alice",
                KERNEL_NAMESPACE="alice-ns", KUBERNETES_SERVICE_HOST="10.96.0.1", KUBERNETES_SERVICE_PORT="443",
                PYTHON=sys.executable, TMPDIR=str(tmp_path))
    if spark_home:
        (tmp_path / "spark" / "bin").mkdir(parents=True)
        submit = tmp_path / "spark" / "bin" / "spark-submit"
        submit.write_text('#!/bin/sh\nfor a in "$@"; do echo "ARG $a"; done\n'
                          'for a in "$@"; do case "$a" in *driver.podTemplateFile=*) cat "${a#*=}";; esac; done\n')
        submit.chmod(0o755)
        base["SPARK_HOME"] = str(tmp_path / "spark")
    base.update(env)
    argv = [str(KERNELSPECS / name / "bin" / "run.sh"), "/tmp/conn.json",
            "--RemoteProcessProxy.response-address", "10.1.2.3:8877",
            "--RemoteProcessProxy.spark-context-initialization-mode", "lazy"]
    return subprocess.run(argv, env=base, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", SPARK_NAMES)
def test_run_sh_submits_the_rendered_driver_template(name: str, tmp_path: Path) -> None:
    done = run_sh(name, tmp_path)

    assert done.returncode == 0, done.stderr
    args = [line[4:] for line in done.stdout.splitlines() if line.startswith("ARG ")]
    assert args[:6] == ["--master", "k8s://https://10.96.0.1:443", "--deploy-mode", "cluster",
                        "--name", f"alice-{KERNEL_ID}"]
    confs = dict(args[i + 1].split("=", 1) for i, arg in enumerate(args) if arg == "--conf")
    image = kernel_json(name)["metadata"]["process_proxy"]["config"]["image_name"]
    assert confs["spark.kubernetes.driver.label.kernel_id"] == KERNEL_ID
    assert confs["spark.kubernetes.namespace"] == "alice-ns" and confs["spark.kubernetes.container.image"] == image
    assert confs["spark.kubernetes.driver.podTemplateFile"] == confs["spark.kubernetes.executor.podTemplateFile"]
    assert args[-1] == "local:///opt/kernelgate/spark_driver.py"
    [pod] = yaml.safe_load_all("\n".join(line for line in done.stdout.splitlines() if not line.startswith("ARG ")))
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert pod["metadata"]["labels"]["kernel_id"] == KERNEL_ID and pod["metadata"]["namespace"] == "alice-ns"
    assert env["EG_RESPONSE_ADDRESS"] == "10.1.2.3:8877" and env["SPARK_CONTEXT_INITIALIZATION_MODE"] == "lazy"
    assert list(tmp_path.glob("kpt_*")) == [], "the rendered template is removed once submitted"


@pytest.mark.parametrize(("env", "message"), [
    ({"SPARK_HOME": ""}, "SPARK_HOME is not set"),
    ({"SPARK_HOME": "/nonexistent-spark"}, "no executable bin/spark-submit"),
    ({"KERNEL_USERNAME": "bob --conf spark.SECRET-VALUE=1"}, "${KERNEL_USERNAME} holds characters"),
    ({"KERNEL_USERNAME": "$(touch SECRET-VALUE)"}, "${KERNEL_USERNAME} holds characters"),
    ({"KERNEL_ID": "SECRET-VALUE"}, "KERNEL_ID is not a UUID"),
    ({"KUBERNETES_SERVICE_HOST": ""}, "${KUBERNETES_SERVICE_HOST}, which is not set"),
])
def test_run_sh_refuses_clearly_and_never_echoes_values(env: dict[str, str], message: str, tmp_path: Path) -> None:
    done = run_sh(SPARK_NAMES[0], tmp_path, spark_home="SPARK_HOME" not in env, **env)

    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert "SECRET-VALUE" not in done.stdout + done.stderr and "ARG" not in done.stdout
    assert not (Path.cwd() / "SECRET-VALUE").exists()


# --------------------------------------------------------------------------- launcher with a kernel command


@pytest.fixture
async def listener():
    async with ResponseListener(host="127.0.0.1", port=0, keys=GatewayKeys(legacy=False)) as lst:
        yield lst


@pytest.mark.slow
async def test_launcher_runs_a_kernel_given_by_command_template(listener) -> None:
    kernel_id, pod_ip = str(uuid.uuid4()), "127.0.0.71"
    # A line only this command runs in the kernel shows the launcher used the template, not its default.
    command = shlex.join([sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                          "--IPKernelApp.exec_lines=launched_by = 'kernel-cmd'"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERNEL_", "EG_", "JPY_", "LAUNCHER_"))}
    env.update(PYTHONPATH=str(ROOT), KERNEL_LANGUAGE="python")
    args = ["--kernel-id", kernel_id, "--response-address", f"127.0.0.1:{listener.port}",
            "--public-key", listener.public_key, "--ip", pod_ip, "--kernel-cmd", command]
    pending = listener.expect(kernel_id, source_ip=pod_ip, timeout=WAIT)
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway.launcher", *args, env=env,
                                                   stdin=asyncio.subprocess.DEVNULL)
    client = AsyncKernelClient()
    try:
        conn = await pending
        client.load_connection_info(conn.to_jupyter())
        client.start_channels(hb=False)
        await client.wait_for_ready(timeout=WAIT)
        results: list[str] = []
        for code in ("1+1", "launched_by"):
            reply = await client.execute_interactive(
                code, timeout=WAIT,
                output_hook=lambda m: m["msg_type"] == "execute_result" and results.append(
                    m["content"]["data"]["text/plain"]),
            )
            assert reply["content"]["status"] == "ok"
        assert results == ["2", "'kernel-cmd'"]

        assert await comm.request_shutdown(conn) is True
        assert await asyncio.wait_for(process.wait(), WAIT) == 0
    finally:
        client.stop_channels()
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), WAIT)


def test_launcher_exits_1_when_the_kernel_program_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERNEL_", "EG_", "LAUNCHER_"))}
    done = subprocess.run(
        [sys.executable, "-m", "gateway.launcher", "--kernel-id", KERNEL_ID, "--response-address", "127.0.0.1:9",
         "--public-key", GatewayKeys(legacy=False).public_key, "--ip", "127.0.0.73",
         "--kernel-cmd", f"{tmp_path}/no-such-kernel --connection-file {{connection_file}}"],
        env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1 and "cannot start the kernel" in done.stderr
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"kernel-{KERNEL_ID}-*.json"))


@pytest.mark.parametrize("command", ["R --slave -e 'IRkernel::main()'", "'unterminated {connection_file}", "   "])
def test_launcher_refuses_a_kernel_command_without_its_connection_file(command: str) -> None:
    from gateway.launcher.options import UsageError, parse_options

    env = {"KERNEL_ID": KERNEL_ID, "RESPONSE_ADDRESS": "127.0.0.1:8877", "KERNEL_RESPONSE_KEY": "a2V5"}
    if not command.strip():
        assert parse_options(["--kernel-cmd", command], env).kernel_cmd is None  # blank: the IPython default
        return
    with pytest.raises(UsageError):
        parse_options(["--kernel-cmd", command], env)


def test_kernel_command_template_keeps_quoted_words_and_fills_in_the_connection_file() -> None:
    from gateway.launcher.options import parse_options

    env = {"KERNEL_ID": KERNEL_ID, "RESPONSE_ADDRESS": "127.0.0.1:8877", "KERNEL_RESPONSE_KEY": "a2V5",
           "LAUNCHER_KERNEL_CMD": "ignored {connection_file}"}
    options = parse_options(["--kernel-cmd", "R --slave -e 'IRkernel::main()' --args {connection_file}"], env)
    assert options.kernel_argv("/tmp/k 1.json") == ("R", "--slave", "-e", "IRkernel::main()", "--args", "/tmp/k 1.json")
    # Without the option the environment's template is used; without either, the IPython default.
    assert parse_options([], env).kernel_argv("/tmp/k.json") == ("ignored", "/tmp/k.json")
    assert parse_options([], {**env, "LAUNCHER_KERNEL_CMD": ""}).kernel_argv("/tmp/k.json") is None


# --------------------------------------------------------------------------- on the simulated node


@pytest.fixture
async def node(tmp_path: Path):
    """A simulated cluster whose node runs kernel images as this repository's bootstrap scripts, and a provisioner."""
    store = Store()
    admin = MemoryCluster(store)
    await admin.create("namespaces", {"metadata": {"name": "kernels", "labels": {"app": "enterprise-gateway",
                                                                                 "component": "kernel"}}})
    await admin.create("serviceaccounts", {"metadata": {"name": "kernel-sa"}}, namespace="kernels")
    agent = node_agent(store, tmp_path / "node", images=kernel_image_map())
    pods = Informer(admin, "pods", label_selector=kernel_selector())
    listener = ResponseListener(host="127.0.0.1", port=0)
    await agent.start()
    await listener.start()
    await pods.start()
    settings = ProvisionerSettings(gateway_namespace="enterprise-gateway", response_address=f"127.0.0.1:{listener.port}")
    provisioner = PodProvisioner(admin, pods, listener, settings)
    try:
        yield provisioner
    finally:
        await provisioner.close()
        await pods.stop()
        await listener.stop()
        await agent.stop()
        await admin.close()


def launch_request(name: str) -> LaunchRequest:
    env = {"KERNEL_USERNAME": "alice", "KERNEL_NAMESPACE": "kernels", "KERNEL_SERVICE_ACCOUNT_NAME": "kernel-sa"}
    return LaunchRequest(kernel_id=str(uuid.uuid4()), username="alice", timeout=WAIT * 2,
                         spec=kernel_spec_info(name, KERNELSPECS / name), env=env)


@pytest.mark.slow
async def test_spark_kernelspec_pod_runs_its_images_default_command_on_the_node(node: PodProvisioner) -> None:
    # The Spark template has no command: the image's own (the shared bootstrap) starts the kernel.
    request = launch_request("spark_python_kubernetes")
    running = await node.launch(request)
    assert node.pod_phase(request.kernel_id) == "Running"
    client = AsyncKernelClient()
    client.load_connection_info(running.connection.to_jupyter())
    client.start_channels(hb=False)
    try:
        await client.wait_for_ready(timeout=WAIT)
        results: list[str] = []
        reply = await client.execute_interactive(
            "1+1", timeout=WAIT,
            output_hook=lambda m: m["msg_type"] == "execute_result" and results.append(m["content"]["data"]["text/plain"]),
        )
        assert reply["content"]["status"] == "ok" and results == ["2"]
    finally:
        client.stop_channels()
        await node.stop(running, grace_seconds=5)
    assert node.pod_phase(request.kernel_id) is None


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("R") is not None, reason="this machine has R: the R kernel would start")
async def test_r_kernelspec_fails_fast_on_a_node_without_r(node: PodProvisioner) -> None:
    with pytest.raises(PodFailed) as failed:
        await node.launch(launch_request("r_kubernetes"))
    assert "this image has no R installation" in str(failed.value) + failed.value.message
