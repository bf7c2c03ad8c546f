"""A first start that fails while the API refuses to delete the kernel's namespace leaves the record for the lease
holder to finish.

The gateway has no grant to list namespaces: a kernel's namespace is found only through its record
(or its pod).  So when a failed start cannot delete what it created, however often it tries, the
record is kept, claimed ``terminating``; the client has the launch's own error at once, and the
lease holder deletes the namespace, then the record, once the API takes deletions again.  Three
ways a start fails after its namespace exists: inside the provisioner (the pod is refused), after
the launch (the kernel never answers ``kernel_info_request``), and after that (the running record
cannot be written).  The cluster is tests/gatewayharness.py's, with faults armed on its store.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from gateway.cluster.interface import Forbidden, ServiceUnavailable
from gateway.kernels.errors import KernelLaunchFailed
from gateway.provisioner.apicalls import CLEANUP_ATTEMPTS
from tests.gatewayharness import GATEWAY_NAMESPACE, Harness, gateway_harness, kernelspec_variant
from tests.replicawatch import WAIT, kernel_record, nothing_left, record_name

pytestmark = pytest.mark.slow

FAST = {"shutdown_wait_time": 1.0, "deadline_grace": 1.0}
"""The kept record's deadline is ``deadline_grace`` away: the lease holder acts soon."""
MUTE = {"LAUNCHER_KERNEL_CMD": "python -c 'import time; time.sleep(300)' {connection_file}"}
"""A kernelspec whose launcher calls back but whose "kernel" binds none of its ports, so never answers."""


def refuse_namespace_deletions(h: Harness) -> None:
    """Every attempt of the failed start to delete the kernel's namespace is refused; the lease holder's are not."""
    h.store.faults.inject("delete", "namespaces", error=ServiceUnavailable("etcd is electing a leader"),
                          times=CLEANUP_ATTEMPTS)


async def assert_left_to_the_lease_holder(h: Harness, kernel_id: str) -> None:
    """Right after the client's error: the record stays terminating with the namespace; then nothing is left."""
    secret = await h.admin.get("secrets", record_name(kernel_id), namespace=GATEWAY_NAMESPACE)
    record = kernel_record(secret)
    assert record["phase"] == "terminating", "the record went while the namespace stayed"
    namespace = record["placement"]["namespace"]
    found = await h.admin.get("namespaces", namespace)
    assert not found["metadata"].get("deletionTimestamp")
    assert len(h.store.faults) == 0, "the start did not try the namespace's deletion as often as it may"

    await nothing_left(h.admin, [kernel_id], [namespace], timeout=WAIT)


async def test_a_pod_the_api_refuses_leaves_the_record_for_the_lease_holder(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path, **FAST) as h:
        kernel_id = str(uuid.uuid4())
        # The namespace, its role binding and service account are created; the pod is refused.
        h.store.faults.inject("create", "pods", error=Forbidden("pods is forbidden"), times=1)
        refuse_namespace_deletions(h)

        with pytest.raises(KernelLaunchFailed) as failed:
            await h.start(KERNEL_ID=kernel_id)

        assert failed.value.status == 403
        await assert_left_to_the_lease_holder(h, kernel_id)


async def test_a_kernel_that_never_answers_leaves_the_record_for_the_lease_holder(tmp_path: Path) -> None:
    specs = kernelspec_variant(tmp_path / "specs", "python_mute", env=MUTE)
    # The wait for the kernel's answer ends by the launching record's deadline less ``deadline_grace``:
    # a grace the clean-up fits in, so the lease holder does not take the start over meanwhile.
    async with gateway_harness(tmp_path, spec_paths=(specs,), **{**FAST, "deadline_grace": 10.0}) as h:
        kernel_id = str(uuid.uuid4())
        refuse_namespace_deletions(h)

        with pytest.raises(KernelLaunchFailed) as failed:
            await h.service.start_kernel(name="python_mute", env=h.env(KERNEL_ID=kernel_id, KERNEL_LAUNCH_TIMEOUT="3"),
                                         username_fallback="gateway")

        assert failed.value.status == 504
        assert "did not answer a kernel_info_request" in failed.value.message
        await assert_left_to_the_lease_holder(h, kernel_id)


async def test_a_running_record_the_api_refuses_leaves_the_record_for_the_lease_holder(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path, **FAST) as h:
        kernel_id = str(uuid.uuid4())
        # The record is written "launching" (a create) first; recording the launched kernel running is its update.
        h.store.faults.inject("update", "secrets", error=Forbidden("secrets is forbidden"), namespace=GATEWAY_NAMESPACE,
                              times=1)
        refuse_namespace_deletions(h)

        with pytest.raises(Forbidden):
            await h.start(KERNEL_ID=kernel_id)

        await assert_left_to_the_lease_holder(h, kernel_id)
