"""On the embedded simulated cluster, the kernelspecs offered are those whose kernels can run on this machine.

R and Scala kernels need R or almond where the node agent runs them, and Spark does not run on the
simulated node at all: a laptop's gateway does not list what can only fail, and a start of one is refused
at once with the reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fakes.node.images import ImageMap, ImageSpec
from fakes.node.kernel_images import kernel_image_map, why_not_runnable
from tests.httpharness import running_gateway

pytestmark = pytest.mark.slow

SPARK = ("spark_python_kubernetes", "spark_r_kubernetes", "spark_scala_kubernetes")
HAS_R = shutil.which("R") is not None
HAS_ALMOND = Path("/opt/almond/almond").exists()


async def test_the_embedded_cluster_offers_only_kernelspecs_it_can_run(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        status, body, _ = await gw.call("GET", "/api/kernelspecs")
        assert status == 200
        offered = set(body["kernelspecs"])
        assert {"python_kubernetes", "python_tf_kubernetes"} <= offered
        assert offered.isdisjoint(SPARK)
        assert ("r_kubernetes" in offered) == HAS_R
        assert ("scala_kubernetes" in offered) == HAS_ALMOND
        assert body["default"] == "python_kubernetes"

        status, body, _ = await gw.call("POST", "/api/kernels", {"name": "spark_python_kubernetes",
                                                                 "env": {"KERNEL_USERNAME": "alice"}})
        assert status == 404
        assert body["message"] == ("Kernelspec 'spark_python_kubernetes' cannot run on this cluster: "
                                   "Spark does not run on the simulated node.")
        assert (await gw.call("GET", "/api/kernelspecs/spark_r_kubernetes"))[0] == 404
        assert await gw.kernel_objects() == set()


def test_a_language_kernel_runs_where_its_program_is_installed(tmp_path: Path) -> None:
    images = kernel_image_map()
    assert why_not_runnable("elyra/kernel-py:dev", images) == ""
    assert why_not_runnable("kernelgate/kernel-spark-py:dev", images) == "Spark does not run on the simulated node"
    assert why_not_runnable("example.com/unknown:1", images) == ""  # its launch fails as its pull would

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    with_r = ImageMap({"kernelgate/kernel-r": ImageSpec(cmd=["/etc/bootstrap-kernel.sh"], env={"PATH": str(bin_dir)})})
    assert why_not_runnable("kernelgate/kernel-r:dev", with_r) == "R is not installed on this machine"
    program = bin_dir / "R"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert why_not_runnable("kernelgate/kernel-r:dev", with_r) == ""
