"""Which images ``kernelgate cluster``'s node runs: the base, kernel and gateway images, and those of ``--images FILE``.

The kernel and gateway images are known without a file (a gateway on the cluster starts
kernels of ``elyra/kernel-py``); ``--images`` adds images from a YAML file (the format the
README documents); an unreadable file stops the command before anything starts.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from fakes.node.gateway_image import repository_image_map
from gateway.cli import build_parser, run_cluster
from tests import kubectlclient
from tests.kubectlclient import Kubectl

IMAGE_FILE = textwrap.dedent("""\
    images:
      example/hello:
        entrypoint: ["sh", "-c"]
        cmd: ["echo hello from $SOURCE"]
        env:
          SOURCE: the image map
          PATH: /usr/bin:/bin
""")


def test_the_node_knows_the_kernel_and_gateway_images():
    images = repository_image_map()
    for reference in ("elyra/kernel-py:dev", "docker.io/elyra/kernel-py:3.2.3", "kernelgate/kernel-py:dev",
                      "kernelgate/gateway:dev", "busybox", "python:3.12"):
        assert reference in images, reference
    gateway = images.resolve("kernelgate/gateway:dev")
    assert gateway is not None and gateway.argv(["kernelgate"], ["serve"]) == ["kernelgate", "serve"]
    assert "example/hello" not in images


def test_an_unreadable_image_file_stops_the_command(tmp_path, capsys):
    broken = tmp_path / "images.yaml"
    broken.write_text("images: [not, a, mapping\n")
    for path in (broken, tmp_path / "missing.yaml"):
        args = build_parser().parse_args(["cluster", "--state-dir", str(tmp_path / "state"), "--images", str(path)])
        assert run_cluster(args) == 2
        assert f"cannot read the image map {path}" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


@pytest.mark.slow
@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@kubectlclient.needs(kubectlclient.WAIT_FOR_JSONPATH, "kubectl wait --for=jsonpath")
async def test_kernelgate_cluster_runs_the_images_of_its_image_file(tmp_path):
    image_file = tmp_path / "images.yaml"
    image_file.write_text(IMAGE_FILE)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "cluster", "--state-dir", str(tmp_path / "state"),
        "--images", str(image_file), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        kubeconfig = None
        while kubeconfig is None:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line, "kernelgate cluster ended before printing its KUBECONFIG"
            if line.startswith("export KUBECONFIG="):
                kubeconfig = Path(line.split("=", 1)[1].strip())
        kubectl = Kubectl(kubeconfig, tmp_path / "cache")
        await kubectl("run", "hello", "--image=example/hello:1", "--restart=Never")
        await kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/hello", "--timeout=30s")
        _, out, _ = await kubectl("logs", "hello")
        assert out == "hello from the image map\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
