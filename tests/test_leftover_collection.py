"""What a launch leaves when its gateway vanishes (SIGKILL) is removed by the replica holding the duties' Lease.

Two gateways share one simulated cluster (``tests/gatewayharness.py``); the one launching is
"killed" (:meth:`~tests.gatewayharness.Stack.crash`: no request of it reaches the cluster any
more, none of its shutdown runs).  What it created for the kernel, every kind of it, must go:
the kernel's own namespace with the RoleBinding and the ServiceAccount in it, its pod, its
record Secret and its admission; and nothing else: not a user's namespace or account, not
another gateway's kernels.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from gateway.objects import kernel_labels, kernel_resource_name
from gateway.objects.record import record_name
from gateway.provisioner.pods import GATEWAY_NAMESPACE_ANNOTATION
from scenarios.observe import gone, wait_until
from tests.gatewayharness import (
    GATEWAY_NAMESPACE,
    KERNEL_CLUSTER_ROLE,
    SILENT_IMAGE,
    USER_ACCOUNT,
    USER_NAMESPACE,
    WAIT,
    SharedCluster,
    Stack,
    client_env,
    shared_cluster,
)

pytestmark = pytest.mark.slow

LEFTOVER_GRACE = 2.0
"""The holder's EG_LEFTOVER_GRACE here: kernel objects without a record are this old before they go."""


async def launch_in_background(stack: Stack, mode: str, **extra: str) -> tuple[str, asyncio.Task[Any]]:
    """A start on ``stack`` that will not finish (its kernel never answers), and its kernel id."""
    kernel_id = str(uuid.uuid4())
    env = client_env(mode, KERNEL_ID=kernel_id, **extra)
    task = asyncio.create_task(stack.service.start_kernel(name=None, env=env, username_fallback="gateway"))
    return kernel_id, task


async def kernel_pod(stack: Stack, kernel_id: str) -> dict[str, Any]:
    pod = await stack.pods.wait_for(
        lambda p: p is not None and p["metadata"]["labels"].get("kernel_id") == kernel_id, timeout=WAIT)
    assert pod is not None
    return pod


async def everything_in(cluster: SharedCluster, namespace: str) -> dict[str, list[str]]:
    """Names of the service accounts, role bindings and pods in ``namespace``, as its administrator sees them."""
    found = {}
    for resource in ("serviceaccounts", "rolebindings", "pods"):
        listing = await cluster.admin.list(resource, namespace=namespace)
        found[resource] = sorted(o["metadata"]["name"] for o in listing["items"])
    return found


async def emptied(cluster: SharedCluster, namespace: str) -> None:
    """Wait until ``namespace`` is gone, with every service account, role binding and pod in it."""
    await wait_until(cluster.admin, "namespaces", lambda found: ("", namespace) not in found, timeout=WAIT,
                     what=f"namespace {namespace} gone")
    for resource in ("serviceaccounts", "rolebindings", "pods"):
        await wait_until(cluster.admin, resource, lambda found: not found, namespace=namespace, timeout=WAIT,
                         what=f"the {resource} of namespace {namespace} gone")


async def wait_for_binding(cluster: SharedCluster, namespace: str) -> None:
    await wait_until(cluster.admin, "rolebindings", bool, namespace=namespace, timeout=WAIT,
                     what=f"the kernel's role binding in {namespace}")


async def test_a_launch_killed_before_its_pod_is_removed_with_its_namespace_binding_account_and_record(
        tmp_path: Path) -> None:
    async with shared_cluster(tmp_path) as cluster:
        limits = {"deadline_grace": 0.5, "max_kernels": 10}  # so that the launch is admitted, and released
        holder = await cluster.gateway("gateway-holder", **limits)
        # The operator's kernel account, expected to appear in each new namespace, never does there: the pod is
        # refused for it, and the launch waits for it before creating the pod again.
        launcher = await cluster.gateway("gateway-launcher", provisioning={"default_service_account": "kernel-account"},
                                         **limits)
        assert holder.lease.leading
        kernel_id, launch = await launch_in_background(launcher, "own", KERNEL_LAUNCH_TIMEOUT="3")
        namespace = kernel_resource_name("alice", kernel_id)
        await wait_for_binding(cluster, namespace)
        before = await everything_in(cluster, namespace)
        assert before["rolebindings"] == [KERNEL_CLUSTER_ROLE] and "default" in before["serviceaccounts"]
        assert before["pods"] == [] and kernel_id in await cluster.admitted()
        await launcher.crash()

        await gone(cluster.admin, kernel_id, timeout=WAIT)  # its record Secret too
        await emptied(cluster, namespace)
        await cluster.assert_nothing_left(kernel_id)
        assert holder.service.list() == []
        await asyncio.gather(launch, return_exceptions=True)  # the dead gateway's launch ends in whatever it hit


async def test_kernel_objects_without_a_record_are_removed_after_the_grace_and_nothing_else(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with shared_cluster(tmp_path) as cluster:
        holder = await cluster.gateway("gateway-holder", leftover_grace=LEFTOVER_GRACE)
        launcher = await cluster.gateway("gateway-launcher")
        assert holder.lease.leading
        foreign = await another_gateways_kernel(cluster)  # older than the leftovers: as old as they when collected
        own_id, own_launch = await launch_in_background(launcher, "own", KERNEL_IMAGE=SILENT_IMAGE)
        user_id, user_launch = await launch_in_background(launcher, "user", KERNEL_IMAGE=SILENT_IMAGE)
        own_pod, user_pod = await kernel_pod(launcher, own_id), await kernel_pod(launcher, user_id)
        caplog.set_level(logging.WARNING, logger="gateway.kernels.collect")
        await launcher.crash()
        # Their records are gone too (an operator deleted them, say): nothing says a kernel lives there.
        for kernel_id in (own_id, user_id):
            await cluster.admin.delete("secrets", record_name(kernel_id), namespace=GATEWAY_NAMESPACE)

        for kernel_id in (own_id, user_id):
            await gone(cluster.admin, kernel_id, timeout=WAIT)
            await cluster.assert_nothing_left(kernel_id)  # the user's namespace and account are kept
        await emptied(cluster, own_pod["metadata"]["namespace"])
        assert USER_ACCOUNT in (await everything_in(cluster, USER_NAMESPACE))["serviceaccounts"]
        for launch in (own_launch, user_launch):  # the dead gateway's waits: no one's any more
            launch.cancel()
        await asyncio.gather(own_launch, user_launch, return_exceptions=True)

        for pod in (own_pod, user_pod):
            decided = [r.created for r in caplog.records if r.name == "gateway.kernels.collect"
                       and f"{pod['metadata']['name']} has no kernel record" in r.getMessage()]
            assert decided, f"the holder never said it collected pod {pod['metadata']['name']}"
            assert min(decided) >= created_at(pod) + LEFTOVER_GRACE, "collected before EG_LEFTOVER_GRACE"

        # Another gateway's kernel (its pod names that gateway's namespace), as old, was seen in the same passes.
        await cluster.admin.get("pods", foreign, namespace=foreign)
        await cluster.admin.get("namespaces", foreign)


async def test_a_record_deleted_while_a_replica_adopts_its_kernel_leaves_nothing_there(tmp_path: Path) -> None:
    # The holder learns of the launch from its record and adopts it; adopting reads the kernelspec,
    # and the record is deleted meanwhile.  The holder must let that kernel go (not list it, not
    # keep it in its table), or its pod, now without a record, would never be collected.
    async with shared_cluster(tmp_path) as cluster:
        holder = await cluster.gateway("gateway-holder", leftover_grace=LEFTOVER_GRACE)
        launcher = await cluster.gateway("gateway-launcher")
        specs = holder.service.specs
        choose, entered, release = specs.choose, asyncio.Event(), asyncio.Event()

        async def slow_choose(name: str | None) -> Any:
            entered.set()
            await release.wait()
            return await choose(name)

        specs.choose = slow_choose  # type: ignore[method-assign]
        kernel_id, launch = await launch_in_background(launcher, "own", KERNEL_IMAGE=SILENT_IMAGE)
        await asyncio.wait_for(entered.wait(), WAIT)
        await kernel_pod(launcher, kernel_id)
        await launcher.crash()
        await cluster.admin.delete("secrets", record_name(kernel_id), namespace=GATEWAY_NAMESPACE)
        await holder.records.wait_for(lambda obj: obj is None, namespace=GATEWAY_NAMESPACE,
                                      name=record_name(kernel_id), timeout=WAIT)
        specs.choose = choose  # type: ignore[method-assign]
        release.set()

        await gone(cluster.admin, kernel_id, timeout=WAIT)
        await cluster.assert_nothing_left(kernel_id)
        assert kernel_id not in [k.id for k in holder.service.list()]
        launch.cancel()
        await asyncio.gather(launch, return_exceptions=True)


def created_at(obj: dict[str, Any]) -> float:
    """``metadata.creationTimestamp`` as a POSIX time (whole seconds, as the API server keeps it)."""
    moment = datetime.strptime(obj["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    return moment.replace(tzinfo=timezone.utc).timestamp()


async def another_gateways_kernel(cluster: SharedCluster) -> str:
    """A kernel of a gateway deployed in another namespace: its own namespace and pod, no record here."""
    kernel_id = str(uuid.uuid4())
    name = kernel_resource_name("zoe", kernel_id)
    await cluster.admin.create("namespaces", {"metadata": {"name": name, "labels": kernel_labels(kernel_id)}})
    await cluster.admin.create("pods", {
        "metadata": {"name": name, "labels": kernel_labels(kernel_id),
                     "annotations": {GATEWAY_NAMESPACE_ANNOTATION: "another-gateway"}},
        # Bound to a node of its own: no node agent here runs it.
        "spec": {"restartPolicy": "Never", "nodeName": "elsewhere", "containers": [{"name": name, "image": "x"}]},
    }, namespace=name)
    return name
