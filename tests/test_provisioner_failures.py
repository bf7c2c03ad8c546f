"""Kernel launches that fail, and that each leaves nothing behind on the simulated cluster.

A missing image, a kernel command that exits, an unschedulable pod, a
launcher that never calls back, a cancelled launch, a pod deleted under it,
the gateway's pod watch or response listener stopping under it, RBAC that
forbids a step, and kernel settings refused before anything is created.  The
cluster is tests/provisionerharness.py's.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fakes.gateway_rbac import cluster_role
from fakes.manifests import gateway_rules
from gateway.cluster.informer import Informer
from gateway.objects import kernel_selector
from gateway.provisioner import (
    ClusterUnavailable,
    ImagePullFailed,
    InvalidLaunch,
    LaunchForbidden,
    LaunchTimeout,
    PodFailed,
    PodProvisioner,
    ResponseListener,
    Unschedulable,
)
from tests.podwait import phase_is, wait_for_pod
from tests.provisionerharness import (
    FAILING_IMAGE,
    RBAC,
    SILENT_IMAGE,
    SPEC,
    WAIT,
    Env,
    assert_nothing_left,
    env_fixture,  # noqa: F401 (the ``env`` fixture, which pytest finds by name)
    exists,
)

pytestmark = pytest.mark.slow

GATEWAY_RULES: list[dict[str, Any]] = gateway_rules()
"""What the gateway's service account may do: the manifests' enterprise-gateway-controller ClusterRole."""

MISSING_IMAGE = "registry.example.com/nobody/kernel-py:404"


async def test_a_missing_image_fails_fast_and_leaves_nothing(env: Env) -> None:
    request = env.request(KERNEL_IMAGE=MISSING_IMAGE, timeout=600)

    with pytest.raises(ImagePullFailed) as failed:
        await asyncio.wait_for(env.provisioner.launch(request), WAIT)

    assert MISSING_IMAGE in failed.value.message and "ErrImagePull" in failed.value.message
    await assert_nothing_left(env.admin, request.kernel_id)


async def test_a_kernel_command_exiting_1_is_a_pod_failure_with_its_log(env: Env) -> None:
    request = env.request(KERNEL_IMAGE=FAILING_IMAGE, timeout=600)

    with pytest.raises(PodFailed) as failed:
        await asyncio.wait_for(env.provisioner.launch(request), WAIT)

    assert failed.value.exit_code == 1 and failed.value.status == 500
    assert "exited with code 1" in failed.value.message and "no kernel today" in failed.value.message
    await assert_nothing_left(env.admin, request.kernel_id)


async def test_an_unschedulable_pod_fails_fast(env: Env, tmp_path: Path) -> None:
    spec_dir = tmp_path / "gpu_kernel"
    (spec_dir / "scripts").mkdir(parents=True)
    template = (SPEC.template_path).read_text().replace("  restartPolicy: Never\n",
                                                      "  restartPolicy: Never\n  nodeSelector:\n    gpu: a100\n")
    (spec_dir / "scripts" / "kernel-pod.yaml").write_text(template)
    request = env.request(spec=replace(SPEC, name="gpu_kernel", resource_dir=spec_dir), timeout=600)

    with pytest.raises(Unschedulable) as failed:
        await asyncio.wait_for(env.provisioner.launch(request), WAIT)

    assert "didn't match Pod's node affinity/selector" in failed.value.message
    await assert_nothing_left(env.admin, request.kernel_id)


async def test_a_launcher_that_never_calls_back_times_out_and_leaves_nothing(env: Env) -> None:
    request = env.request(KERNEL_IMAGE=SILENT_IMAGE, timeout=3)

    with pytest.raises(LaunchTimeout) as timed_out:
        await env.provisioner.launch(request)

    pod_name = f"alice-{request.kernel_id}"
    assert timed_out.value.status == 504
    assert f"pod {pod_name} in namespace {pod_name}" in timed_out.value.message
    assert "sent no connection info within 3s" in timed_out.value.message
    await assert_nothing_left(env.admin, request.kernel_id)
    assert not env.listener.is_expected(request.kernel_id)


async def test_a_cancelled_launch_removes_what_it_created(env: Env) -> None:
    request = env.request(KERNEL_IMAGE=SILENT_IMAGE, timeout=600)
    pod_name = f"alice-{request.kernel_id}"
    launching = asyncio.ensure_future(env.provisioner.launch(request))
    await wait_for_pod(env.admin, pod_name, pod_name, phase_is("Running"), timeout=WAIT)

    launching.cancel()
    with pytest.raises(asyncio.CancelledError):
        await launching

    await assert_nothing_left(env.admin, request.kernel_id)


async def test_a_pod_deleted_before_its_launcher_calls_back_fails_the_launch_at_once(env: Env) -> None:
    request = env.request(KERNEL_IMAGE=SILENT_IMAGE, timeout=600)
    pod_name = f"alice-{request.kernel_id}"
    launching = asyncio.ensure_future(env.provisioner.launch(request))
    await wait_for_pod(env.admin, pod_name, pod_name, phase_is("Running"), timeout=WAIT)

    await env.admin.delete("pods", pod_name, namespace=pod_name, grace_period_seconds=0)

    with pytest.raises(PodFailed) as failed:
        await asyncio.wait_for(launching, WAIT)  # well within the launch's own 600 s
    assert failed.value.status == 500 and f"pod {pod_name} in namespace {pod_name}" in failed.value.message
    await assert_nothing_left(env.admin, request.kernel_id)
    assert not env.listener.is_expected(request.kernel_id)


async def test_a_launch_the_informer_stops_under_is_unavailable_and_leaves_nothing(env: Env) -> None:
    pods = Informer(env.gateway, "pods", label_selector=kernel_selector())
    await pods.start()
    provisioner = PodProvisioner(env.gateway, pods, env.listener, env.settings)
    request = env.request(KERNEL_IMAGE=SILENT_IMAGE, timeout=600)
    pod_name = f"alice-{request.kernel_id}"
    launching = asyncio.ensure_future(provisioner.launch(request))
    await wait_for_pod(env.admin, pod_name, pod_name, phase_is("Running"), timeout=WAIT)

    await pods.stop()

    with pytest.raises(ClusterUnavailable) as unavailable:
        await asyncio.wait_for(launching, WAIT)
    assert unavailable.value.status == 503
    assert unavailable.value.message == "the gateway stopped watching kernel pods"
    await provisioner.close()
    await assert_nothing_left(env.admin, request.kernel_id)


async def test_a_launch_the_response_listener_stops_under_is_unavailable_and_leaves_nothing(env: Env) -> None:
    async with ResponseListener(host="127.0.0.1", port=0) as listener:
        settings = replace(env.settings, response_address=f"127.0.0.1:{listener.port}")
        provisioner = PodProvisioner(env.gateway, env.pods, listener, settings)
        request = env.request(KERNEL_IMAGE=SILENT_IMAGE, timeout=600)
        pod_name = f"alice-{request.kernel_id}"
        launching = asyncio.ensure_future(provisioner.launch(request))
        await wait_for_pod(env.admin, pod_name, pod_name, phase_is("Running"), timeout=WAIT)

    with pytest.raises(ClusterUnavailable) as unavailable:
        await asyncio.wait_for(launching, WAIT)
    assert unavailable.value.status == 503
    assert "response listener stopped before the kernel called back" in unavailable.value.message
    await provisioner.close()
    await assert_nothing_left(env.admin, request.kernel_id)


async def test_forbidden_role_binding_removes_the_new_namespace(env: Env) -> None:
    without_bindings = [r for r in GATEWAY_RULES if "rolebindings" not in r["resources"]]
    without_bindings.append({"apiGroups": [RBAC], "resources": ["rolebindings"], "verbs": ["get", "delete"]})
    await env.admin.replace("clusterroles", "enterprise-gateway-controller",
                            cluster_role("enterprise-gateway-controller", without_bindings))
    request = env.request()

    with pytest.raises(LaunchForbidden) as refused:
        await env.provisioner.launch(request)

    assert refused.value.status == 403 and "rolebindings" in refused.value.message
    await assert_nothing_left(env.admin, request.kernel_id)
    assert not await exists(env.admin, "namespaces", f"alice-{request.kernel_id}")


@pytest.mark.parametrize("namespace", ["no-such-team", "Team_A", "x" * 64])
async def test_a_bad_kernel_namespace_is_refused_before_anything_is_created(env: Env, namespace: str) -> None:
    request = env.request(KERNEL_NAMESPACE=namespace)

    with pytest.raises(InvalidLaunch) as refused:
        await env.provisioner.launch(request)

    assert refused.value.status == 400 and "namespace" in refused.value.message
    await assert_nothing_left(env.admin, request.kernel_id)
    assert not env.listener.is_expected(request.kernel_id)


async def test_a_prohibited_uid_is_forbidden(env: Env) -> None:
    request = env.request(KERNEL_UID="0")

    with pytest.raises(LaunchForbidden):
        await env.provisioner.launch(request)

    await assert_nothing_left(env.admin, request.kernel_id)
