"""Kernel launches over a cluster whose answers come late, never, or get lost.

A real cluster creates a new namespace's service account a moment after the
namespace, and may lose the answer to a write it made; the launch waits for
the one (within its timeout) and still removes what the other created.  The
cluster is tests/provisionerharness.py's, seen by the gateway through the
wrappers below.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from gateway.cluster.interface import Cluster, ServiceUnavailable
from gateway.provisioner import ClusterUnavailable, LaunchTimeout, PodFailed, PodProvisioner
from tests.provisionerharness import (
    FAILING_IMAGE,
    SILENT_IMAGE,
    Env,
    assert_nothing_left,
    env_fixture,  # noqa: F401 (the ``env`` fixture, which pytest finds by name)
)

pytestmark = pytest.mark.slow


class LateServiceAccounts:
    """The gateway's cluster where a new namespace's service account is not there at once.

    A real cluster's service-account controller creates ``default`` shortly after the namespace (the
    simulated one at once); here the account is ``EG_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME`` =
    ``kernel-sa``, which appears once the gateway starts watching for it (never, with ``appears=False``).
    """

    ACCOUNT = "kernel-sa"

    def __init__(self, inner: Cluster, admin: Cluster, *, appears: bool) -> None:
        self._inner, self._admin, self._appears = inner, admin, appears
        self.watched: list[str] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def watch(self, resource: str, **options: Any) -> Any:
        if resource == "serviceaccounts":
            self.watched.append(options["namespace"])
            if self._appears:
                account = {"metadata": {"name": self.ACCOUNT}}
                create = self._admin.create("serviceaccounts", account, namespace=options["namespace"])
                asyncio.get_running_loop().call_soon(lambda: self._tasks.add(asyncio.ensure_future(create)))
        return self._inner.watch(resource, **options)

    async def settle(self) -> None:
        await asyncio.gather(*self._tasks)


async def test_a_new_namespace_service_account_is_awaited_before_the_pod_is_created(env: Env) -> None:
    late = LateServiceAccounts(env.gateway, env.admin, appears=True)
    settings = replace(env.settings, default_service_account=late.ACCOUNT)
    provisioner = PodProvisioner(late, env.pods, env.listener, settings)
    request = env.request(KERNEL_IMAGE=FAILING_IMAGE)

    # The pod was admitted (the failing image ran) rather than refused for its missing service account.
    with pytest.raises(PodFailed):
        await provisioner.launch(request)

    await late.settle()
    assert late.watched == [f"alice-{request.kernel_id}"]
    await assert_nothing_left(env.admin, request.kernel_id)


async def test_a_service_account_that_never_appears_ends_the_launch_in_time(env: Env) -> None:
    late = LateServiceAccounts(env.gateway, env.admin, appears=False)
    settings = replace(env.settings, default_service_account=late.ACCOUNT)
    provisioner = PodProvisioner(late, env.pods, env.listener, settings)
    request = env.request(timeout=1)

    with pytest.raises(LaunchTimeout) as timed_out:
        await provisioner.launch(request)

    assert f"service account kernel-sa did not appear in the new namespace alice-{request.kernel_id}" in (
        timed_out.value.message)
    await assert_nothing_left(env.admin, request.kernel_id)


class LostAnswers:
    """The gateway's cluster where creating ``resource`` works but the answer is lost (a 503 after the write)."""

    def __init__(self, inner: Cluster, resource: str) -> None:
        self._inner, self._resource = inner, resource

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def create(self, resource: str, body: Mapping[str, Any], *, namespace: str | None = None) -> Any:
        created = await self._inner.create(resource, body, namespace=namespace)
        if resource == self._resource:
            raise ServiceUnavailable("the server is currently unable to handle the request")
        return created


@pytest.mark.parametrize("resource", ["namespaces", "pods"])
async def test_an_object_created_without_an_answer_is_still_removed(env: Env, resource: str) -> None:
    provisioner = PodProvisioner(LostAnswers(env.gateway, resource), env.pods, env.listener, env.settings)
    request = env.request(KERNEL_IMAGE=SILENT_IMAGE)

    with pytest.raises(ClusterUnavailable) as unavailable:
        await provisioner.launch(request)

    assert unavailable.value.status == 503
    await assert_nothing_left(env.admin, request.kernel_id)
