"""Enterprise Gateway 3.3's own kernelspecs and kernel image, unchanged, on kernelgate.

An operator coming from EG keeps the kernelspecs EG's Makefile builds (``python_kubernetes``
with its ``kernel-pod.yaml.j2``) and the ``elyra/kernel-py`` image, whose ``CMD`` runs EG's
``bootstrap-kernel.sh`` and ``launch_ipykernel.py``.  Here both come from EG 3.3.0's source
distribution (tests/egharness.py: downloaded once into a cache, never into this repository), the
gateway runs on the embedded simulated cluster, and a notebook user's requests go over HTTP and
the kernel's WebSocket: a kernel starts (EG's launcher does not bind its socket: its connection
information is accepted because it comes from the pod's address), runs code, is interrupted,
restarted and shut down.  A Spark kernelspec's pod gets what EG's bootstrap reads, under EG's names.

Skipped, saying why, only where the package registry cannot be reached for the first download.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fakes.node.images import ImageSpec
from gateway.app import EmbeddedCluster, Gateway
from gateway.cluster.interface import Cluster
from gateway.config import GatewayConfig
from scenarios.client import GatewayClient
from scenarios.observe import gone, kernel_pod
from tests.egharness import (
    PIP_TIMEOUT,
    TAG,
    Dockerfile,
    EnterpriseGateway,
    RegistryUnreachable,
    enterprise_gateway,
)
from tests.node import FAST

pytestmark = [pytest.mark.slow, pytest.mark.timeout(PIP_TIMEOUT + 120)]  # a first run downloads and installs

WAIT = 60.0
"""Bound on one wait (a kernel start, an execution, a pod's deletion) on a loaded machine."""
NAMESPACE = "enterprise-gateway"
KERNEL_PY = f"elyra/kernel-py:{TAG}"
KERNEL_SPARK_PY = f"elyra/kernel-spark-py:{TAG}"


@pytest.fixture(scope="module")
def eg() -> EnterpriseGateway:
    """EG 3.3.0's files and kernel-py environment (from the cache; downloaded and made on first use)."""
    try:
        return enterprise_gateway()
    except RegistryUnreachable as err:
        pytest.skip(f"Enterprise Gateway 3.3.0 cannot be fetched: {err}")


def spark_image(eg: EnterpriseGateway) -> ImageSpec:
    """``elyra/kernel-spark-py`` on the simulated node: kernel-py with the variables its Dockerfile adds.

    The simulated node has no Spark and no JVM: the image keeps kernel-py's ``CMD`` (not Spark's
    driver entrypoint), so EG's launcher starts the kernel, without a Spark context when pyspark
    is missing, as it does in any image.
    """
    kernel_py = eg.kernel_py_image()
    spark = Dockerfile.parse((eg.source / "etc" / "docker" / "kernel-spark-py" / "Dockerfile").read_text())
    added = {key: value for key, value in spark.env.items() if "$" not in value}
    return dataclasses.replace(kernel_py, env={**kernel_py.env, **added})


@dataclasses.dataclass
class Deployment:
    client: GatewayClient
    observer: Cluster


@contextlib.asynccontextmanager
async def eg_deployment(eg: EnterpriseGateway, tmp_path: Path) -> AsyncIterator[Deployment]:
    """A gateway offering EG's Kubernetes kernelspecs, on a simulated node that runs EG's images."""
    kernelspecs = await asyncio.to_thread(eg.build_kernelspecs, tmp_path)
    spark = await asyncio.to_thread(spark_image, eg)
    config = GatewayConfig(ip="127.0.0.1", port=0, namespace=NAMESPACE, auth_token=secrets.token_hex(16),
                           kernel_launch_timeout=WAIT, kernel_spec_paths=[str(kernelspecs)])
    cluster = EmbeddedCluster(NAMESPACE, work_dir=tmp_path / "node",
                              agent_options={"shutdown_grace_seconds": 1, "backoff": FAST})
    cluster.images.add(KERNEL_PY, eg.kernel_py_image())
    cluster.images.add(KERNEL_SPARK_PY, spark)
    gateway = Gateway(config, cluster=cluster, response_port=0)
    await gateway.start()
    try:
        yield Deployment(GatewayClient(gateway.url, config.auth_token, wait=WAIT), cluster.admin)
    finally:
        await gateway.stop()


async def start(deployment: Deployment, kernelspec: str) -> str:
    status, model = await deployment.client.call(
        "POST", "/api/kernels", {"name": kernelspec, "env": {"KERNEL_USERNAME": "alice"}})
    assert status == 201, f"starting {kernelspec} answered {status}: {model}"
    return str(model["id"])


async def test_egs_python_kubernetes_kernelspec_and_kernel_py_image_run_a_kernels_whole_life(
        eg: EnterpriseGateway, tmp_path: Path) -> None:
    async with eg_deployment(eg, tmp_path) as deployment:
        client, observer = deployment.client, deployment.observer
        kernel_id = await start(deployment, "python_kubernetes")
        try:
            pod = await kernel_pod(observer, kernel_id, timeout=WAIT)
            container = pod["spec"]["containers"][0]
            assert container["image"] == KERNEL_PY
            assert "command" not in container, "the image's own CMD runs EG's bootstrap script"
            log = await observer.read_pod_log(pod["metadata"]["name"], pod["metadata"]["namespace"])
            assert "kernel-launchers/python/scripts/launch_ipykernel.py --kernel-id " + kernel_id in log

            async with client.channels(kernel_id) as channels:
                reply = await channels.execute("1+1")
                assert (reply.status, reply.results) == ("ok", ["2"])

                answers = []

                async def interrupt() -> None:
                    answers.append((await client.call("POST", f"/api/kernels/{kernel_id}/interrupt"))[0])

                reply = await channels.execute("import time; print('sleeping', flush=True); time.sleep(60)",
                                               on_output=interrupt)
                assert answers == [204]
                assert (reply.status, reply.content.get("ename")) == ("error", "KeyboardInterrupt")
                assert (await channels.execute("x = 41")).status == "ok"

                status, model = await client.call("POST", f"/api/kernels/{kernel_id}/restart")
                assert status == 200 and model["id"] == kernel_id
                await kernel_pod(observer, kernel_id, timeout=WAIT, other_than=pod["metadata"]["uid"])
                reply = await channels.execute("x")
                assert (reply.status, reply.content.get("ename")) == ("error", "NameError")
                reply = await channels.execute("1+1")
                assert (reply.status, reply.results) == ("ok", ["2"])
        finally:
            status, body = await client.call("DELETE", f"/api/kernels/{kernel_id}")
        assert status == 204, body
        await gone(observer, kernel_id, timeout=WAIT)


SPARK_VARIABLES = ("KERNEL_SPARK_CONTEXT_INIT_MODE", "KERNEL_NAME", "KERNEL_ID", "KERNEL_LANGUAGE", "KERNEL_USERNAME",
                   "PORT_RANGE", "RESPONSE_ADDRESS", "PUBLIC_KEY", "SPARK_HOME")


async def test_a_spark_kernelspecs_pod_gets_what_egs_bootstrap_reads(eg: EnterpriseGateway, tmp_path: Path) -> None:
    async with eg_deployment(eg, tmp_path) as deployment:
        client, observer = deployment.client, deployment.observer
        kernel_id = await start(deployment, "spark_python_kubernetes")
        try:
            pod = await kernel_pod(observer, kernel_id, timeout=WAIT)
            assert pod["spec"]["containers"][0]["image"] == KERNEL_SPARK_PY
            async with client.channels(kernel_id) as channels:
                reply = await channels.execute(
                    f"import json, os; print(json.dumps({{k: os.environ.get(k) for k in {SPARK_VARIABLES}}}))")
            assert reply.status == "ok", reply.content
            seen = json.loads(reply.results[0])
            assert seen["KERNEL_SPARK_CONTEXT_INIT_MODE"] == "lazy"
            assert seen["KERNEL_NAME"] == "spark_python_kubernetes"
            assert seen["KERNEL_ID"] == kernel_id and seen["KERNEL_USERNAME"] == "alice"
            assert seen["KERNEL_LANGUAGE"] == "python" and seen["SPARK_HOME"] == "/opt/spark"
            assert seen["PORT_RANGE"] and seen["RESPONSE_ADDRESS"] and seen["PUBLIC_KEY"]
            log = await observer.read_pod_log(pod["metadata"]["name"], pod["metadata"]["namespace"])
            assert "--spark-context-initialization-mode lazy" in log
        finally:
            status, body = await client.call("DELETE", f"/api/kernels/{kernel_id}")
        assert status == 204, body
        await gone(observer, kernel_id, timeout=WAIT)
