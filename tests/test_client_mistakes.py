"""A client's mistake is a fast 4xx that leaves nothing behind, not a slow 5xx.

A ``KERNEL_SERVICE_ACCOUNT_NAME`` the kernel's namespace does not have is refused as the API
server's ServiceAccount admission refuses its pod (403 "error looking up service account"), and
answered 400 at once rather than after the launch timeout; a client's ``KERNEL_IMAGE`` that cannot
be pulled ends the launch at once with 400 naming the image; an image the operator does not allow
(``EG_ALLOWED_KERNEL_IMAGES``) is refused with 403 before anything is created.  Launches run on
tests/provisionerharness.py's cluster, or through the HTTP API of a gateway on the embedded one.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from fakes.state.admission import admit_pod
from gateway.cluster.interface import Forbidden
from gateway.config import ConfigError, GatewayConfig
from gateway.provisioner import ImagePullFailed, InvalidLaunch, LaunchForbidden
from gateway.provisioner.apicalls import launch_error
from tests.httpharness import USER, running_gateway
from tests.provisionerharness import (
    SILENT_IMAGE,
    SPEC,
    WAIT,
    Env,
    assert_nothing_left,
    env_fixture,  # noqa: F401 (the ``env`` fixture, which pytest finds by name)
)

pytestmark = pytest.mark.slow

LONG = 600.0
"""A launch timeout these failures must not wait for."""
MISSING_IMAGE = "registry.example.com/nobody/kernel-py:404"


# ------------------------------------------------------------------ a service account the namespace lacks


def test_the_admission_refusal_of_a_missing_service_account_is_a_400_naming_it() -> None:
    pod = {"metadata": {"name": "alice-1", "namespace": "team-a"}, "spec": {"serviceAccountName": "nobody"}}
    with pytest.raises(Forbidden) as refused:
        admit_pod(pod, {("team-a", "default"): {}}, lambda prefix: prefix + "abcde")
    assert refused.value.message == ('pods "alice-1" is forbidden: error looking up service account team-a/nobody: '
                                     'serviceaccount "nobody" not found')

    error = launch_error(refused.value, "creating Pod alice-1 in namespace team-a")
    assert isinstance(error, InvalidLaunch) and error.status == 400
    assert "service account nobody does not exist in namespace team-a" in error.message
    # Other refusals stay the gateway's own (RBAC): 403.
    assert launch_error(Forbidden('pods is forbidden: User "x" cannot create'), "creating Pod").status == 403


async def test_a_service_account_the_new_namespace_cannot_have_is_refused_at_once(env: Env) -> None:
    request = env.request(KERNEL_SERVICE_ACCOUNT_NAME="nobody", timeout=LONG)

    with pytest.raises(InvalidLaunch) as refused:
        await asyncio.wait_for(env.provisioner.launch(request), WAIT)

    assert refused.value.status == 400
    assert f"service account nobody does not exist in namespace alice-{request.kernel_id}" in refused.value.message
    await assert_nothing_left(env.admin, request.kernel_id)


# ------------------------------------------------------------------ images


async def test_a_client_image_that_cannot_be_pulled_is_a_400_naming_it(env: Env) -> None:
    request = env.request(KERNEL_IMAGE=MISSING_IMAGE, timeout=LONG)

    with pytest.raises(ImagePullFailed) as failed:
        await asyncio.wait_for(env.provisioner.launch(request), WAIT)

    assert failed.value.status == 400
    assert "KERNEL_IMAGE" in failed.value.message and MISSING_IMAGE in failed.value.message
    await assert_nothing_left(env.admin, request.kernel_id)


async def test_the_kernelspecs_own_image_that_cannot_be_pulled_stays_the_gateways_failure(env: Env) -> None:
    request = env.request(spec=replace(SPEC, image=MISSING_IMAGE), timeout=LONG)

    with pytest.raises(ImagePullFailed) as failed:
        await asyncio.wait_for(env.provisioner.launch(request), WAIT)

    assert failed.value.status == 500 and MISSING_IMAGE in failed.value.message
    await assert_nothing_left(env.admin, request.kernel_id)


async def test_an_image_the_operator_does_not_allow_is_refused_before_anything_is_created(env: Env) -> None:
    provisioner = env.provisioner_with(allowed_kernel_images=("registry.example.com/team/*",))
    refused_request = env.request(KERNEL_IMAGE=SILENT_IMAGE, timeout=LONG)

    with pytest.raises(LaunchForbidden) as refused:
        provisioner.plan(refused_request)
    with pytest.raises(LaunchForbidden):
        await provisioner.launch(refused_request)

    assert refused.value.status == 403
    assert "KERNEL_IMAGE='test/silent-kernel:1' is refused" in refused.value.message
    assert "EG_ALLOWED_KERNEL_IMAGES (patterns: registry.example.com/team/*)" in refused.value.message
    await assert_nothing_left(env.admin, refused_request.kernel_id)
    # What the patterns allow, and the kernelspec's own image, are planned as before.
    provisioner.plan(env.request(KERNEL_IMAGE="registry.example.com/team/kernel-r:2"))
    provisioner.plan(env.request(KERNEL_IMAGE=env.request().spec.image))


async def test_an_executor_image_the_operator_does_not_allow_is_refused_as_the_kernels_own_is(env: Env) -> None:
    provisioner = env.provisioner_with(allowed_kernel_images=("registry.example.com/team/*",))
    refused_request = env.request(KERNEL_EXECUTOR_IMAGE="docker.io/anyone/miner:1", timeout=LONG)

    with pytest.raises(LaunchForbidden) as refused:
        await provisioner.launch(refused_request)

    assert refused.value.status == 403
    assert "KERNEL_EXECUTOR_IMAGE='docker.io/anyone/miner:1' is refused" in refused.value.message
    await assert_nothing_left(env.admin, refused_request.kernel_id)
    provisioner.plan(env.request(KERNEL_EXECUTOR_IMAGE="registry.example.com/team/spark-py:3"))
    provisioner.plan(env.request(KERNEL_EXECUTOR_IMAGE=env.request().spec.image))


# ------------------------------------------------------------------ over the HTTP API, with the settings' defaults


async def test_over_http_each_mistake_is_a_fast_4xx_with_its_reason_and_nothing_left(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, kernel_launch_timeout=LONG) as gw:
        before = await gw.objects()

        status, body, _ = await gw.call("POST", "/api/kernels", {"env": {"KERNEL_USERNAME": USER, "KERNEL_IMAGE": MISSING_IMAGE}})
        assert status == 403, body
        assert "EG_ALLOWED_KERNEL_IMAGES" in body["message"] and body["reason"]
        assert await gw.objects() == before

        status, body, _ = await asyncio.wait_for(
            gw.call("POST", "/api/kernels", {"env": {"KERNEL_USERNAME": USER, "KERNEL_SERVICE_ACCOUNT_NAME": "nobody"}}), WAIT)
        assert status == 400, body
        assert "service account nobody does not exist" in body["message"]
        assert await gw.objects() == before


async def test_over_http_an_allowed_image_that_cannot_be_pulled_is_a_fast_400(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, kernel_launch_timeout=LONG,
                               allowed_kernel_images=["registry.example.com/*"]) as gw:
        before = await gw.objects()
        status, body, _ = await asyncio.wait_for(
            gw.call("POST", "/api/kernels", {"env": {"KERNEL_USERNAME": USER, "KERNEL_IMAGE": MISSING_IMAGE}}), WAIT)
        assert status == 400, body
        assert MISSING_IMAGE in body["message"]
        assert await gw.objects() == before


def test_the_image_setting_is_read_from_its_variable_and_checked_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EG_ALLOWED_KERNEL_IMAGES", raising=False)
    assert GatewayConfig().provisioner_settings().allowed_kernel_images == ()
    monkeypatch.setenv("EG_ALLOWED_KERNEL_IMAGES", "registry.example.com/team/*, elyra/kernel-*:3.2.*")
    settings = GatewayConfig().provisioner_settings()
    assert settings.allowed_kernel_images == ("registry.example.com/team/*", "elyra/kernel-*:3.2.*")
    monkeypatch.setenv("EG_ALLOWED_KERNEL_IMAGES", "['*']")
    assert GatewayConfig().provisioner_settings().allowed_kernel_images == ("*",)
    monkeypatch.setenv("EG_ALLOWED_KERNEL_IMAGES", "['registry.example.com/a b']")
    with pytest.raises(ConfigError, match="EG_ALLOWED_KERNEL_IMAGES"):
        GatewayConfig()
