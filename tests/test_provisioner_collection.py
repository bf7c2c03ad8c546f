"""What the lease holder asks of the provisioner about kernels others left, and what a failed launch may delete.

The lease holder tells a dead pod from a live one by the informer's cache (``pod_life``), and removes
what an abandoned launch or a dead gateway left (``collect``).  A failed launch deletes what it
created, and an object whose creation went unanswered only if it carries the kernel's label: a
namespace of that name someone else made stays.  The cluster is tests/provisionerharness.py's.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.cluster.interface import ServiceUnavailable
from gateway.provisioner import ClusterUnavailable
from gateway.provisioner.leftovers import PodLife
from tests.provisionerharness import (
    SILENT_IMAGE,
    WAIT,
    Env,
    assert_nothing_left,
    env_fixture,  # noqa: F401 (the ``env`` fixture, which pytest finds by name)
    exists,
)

pytestmark = pytest.mark.slow


async def test_pod_life_tells_a_live_pod_from_a_deleted_one(env: Env) -> None:
    running = await asyncio.wait_for(env.provisioner.launch(env.request()), WAIT)
    placement = running.placement
    assert env.provisioner.pod_life(placement, running.pod_uid) is PodLife.ALIVE

    await env.admin.delete("pods", placement.pod_name, namespace=placement.namespace, grace_period_seconds=0)
    await env.pods.wait_for(lambda pod: pod is None, namespace=placement.namespace, name=placement.pod_name,
                            timeout=WAIT)
    assert env.provisioner.pod_life(placement, running.pod_uid) is PodLife.UNSEEN
    assert not await env.provisioner.pod_exists(placement, running.pod_uid)
    await env.provisioner.release(placement)


@pytest.mark.parametrize("shared", [False, True], ids=["own-namespace", "shared-namespace"])
async def test_collect_removes_everything_a_kernel_left(env: Env, shared: bool) -> None:
    provisioner = env.provisioner_with(shared_namespace=shared)
    request = env.request()
    running = await asyncio.wait_for(provisioner.launch(request), WAIT)

    await asyncio.wait_for(provisioner.collect(request.kernel_id, running.placement), WAIT)

    await assert_nothing_left(env.admin, request.kernel_id)


async def test_a_namespace_someone_else_made_survives_a_launch_whose_create_went_unanswered(env: Env) -> None:
    request = env.request(KERNEL_IMAGE=SILENT_IMAGE)
    name = f"alice-{request.kernel_id}"  # the kernel's own namespace, already made by someone else
    await env.admin.create("namespaces", {"metadata": {"name": name, "labels": {"team": "data"}}})
    env.store.faults.inject("create", "namespaces", error=ServiceUnavailable("etcd is electing a leader"), times=1)

    with pytest.raises(ClusterUnavailable):
        await asyncio.wait_for(env.provisioner.launch(request), WAIT)

    assert await exists(env.admin, "namespaces", name), "a failed launch deleted a namespace it did not make"
    await assert_nothing_left(env.admin, request.kernel_id)
