"""An operator's edit to a kernelspec applies to the next kernel start, with no restart of the gateway.

The gateway keeps what it read of a kernelspec (``kernel.json``, the pod template) from one start
to the next and reads it again only once a file under its folder changed (gateway/filewatch.py).
Served on the embedded simulated cluster (tests/httpharness.py), with a copy of the shipped
``python_kubernetes`` that the test edits between starts, as an operator edits a kernelspec in
place (or Kubernetes updates the ConfigMap it is mounted from).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.gatewayharness import kernelspec_variant
from tests.httpharness import USER, RunningGateway, running_gateway

pytestmark = pytest.mark.slow

NAME = "python_edited"


async def _pod_of_a_new_kernel(gw: RunningGateway) -> dict[str, Any]:
    """Start a kernel of the edited kernelspec and return its pod, then shut it down."""
    status, model, _ = await gw.call("POST", "/api/kernels", {"name": NAME, "env": {"KERNEL_USERNAME": USER}})
    assert status == 201, model
    pods = await gw.cluster.admin.list("pods", label_selector=f"kernel_id={model['id']}")
    assert (await gw.call("DELETE", f"/api/kernels/{model['id']}"))[0] == 204
    [pod] = pods["items"]
    return pod


def _env(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0]["env"]}


async def test_an_edited_kernel_json_and_pod_template_apply_to_the_next_start(tmp_path: Path) -> None:
    specs = kernelspec_variant(tmp_path / "specs", NAME, env={"SPEC_EDITION": "first"})
    folder = specs / NAME
    async with running_gateway(tmp_path, kernel_spec_paths=[str(specs)]) as gw:
        assert _env(await _pod_of_a_new_kernel(gw))["SPEC_EDITION"] == "first"
        assert _env(await _pod_of_a_new_kernel(gw))["SPEC_EDITION"] == "first"

        kernel_json = json.loads((folder / "kernel.json").read_text())
        kernel_json["env"]["SPEC_EDITION"] = "second"
        (folder / "kernel.json").write_text(json.dumps(kernel_json))
        assert _env(await _pod_of_a_new_kernel(gw))["SPEC_EDITION"] == "second"

        template = folder / "scripts" / "kernel-pod.yaml"
        text = template.read_text()
        assert "    component: kernel\n" in text
        template.write_text(text.replace("    component: kernel\n", "    component: kernel\n    edition: second\n"))
        pod = await _pod_of_a_new_kernel(gw)
        assert pod["metadata"]["labels"]["edition"] == "second"
        assert _env(pod)["SPEC_EDITION"] == "second"


async def test_a_kernelspec_removed_is_gone_at_the_next_start_and_one_put_back_is_there(tmp_path: Path) -> None:
    specs = kernelspec_variant(tmp_path / "specs", NAME)
    async with running_gateway(tmp_path, kernel_spec_paths=[str(specs)]) as gw:
        await _pod_of_a_new_kernel(gw)
        (specs / NAME).rename(tmp_path / "aside")
        status, body, _ = await gw.call("POST", "/api/kernels", {"name": NAME, "env": {"KERNEL_USERNAME": USER}})
        assert status == 404 and NAME in body["message"], body
        shutil.move(tmp_path / "aside", specs / NAME)
        await _pod_of_a_new_kernel(gw)
