"""First starts that fail part-way: what they made is removed, and only that.

The kernel service records a kernel ``launching``, admits it, launches its pod, waits for the kernel
to answer, then records it running.  When that last write is refused, everything the start made is
removed: pod, namespace, role binding, record and admission.  When the admission is refused because
another replica admitted the same id, that replica's admission stays.  A record that cannot be
deleted then is collected by the lease holder once its launch deadline passes.  The cluster is the
simulated one of tests/gatewayharness.py.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from gateway.cluster.interface import Forbidden, ServiceUnavailable
from gateway.kernels.admissions import ADMISSIONS_NAME
from gateway.kernels.errors import KernelConflict, KernelLimitReached
from gateway.kernels.records import CALL_ATTEMPTS
from gateway.objects.record import RECORD_SELECTOR
from tests.gatewayharness import GATEWAY_NAMESPACE, WAIT, gateway_harness

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", ["own", "shared"])
async def test_a_start_whose_running_record_cannot_be_written_removes_its_pod(tmp_path: Path, mode: str) -> None:
    async with gateway_harness(tmp_path, mode=mode) as h:
        kernel_id = str(uuid.uuid4())
        # The record is written "launching" (a create) first; recording the launched kernel running is its update.
        h.store.faults.inject("update", "secrets", error=Forbidden("secrets is forbidden"), namespace=GATEWAY_NAMESPACE,
                              times=1)
        with pytest.raises(Forbidden):
            await h.start(KERNEL_ID=kernel_id)

        assert h.service.list() == []
        await h.assert_nothing_left(kernel_id)
        records = await h.admin.list("secrets", namespace=GATEWAY_NAMESPACE, label_selector=RECORD_SELECTOR)
        assert records["items"] == []


async def test_a_start_refused_for_an_id_admitted_elsewhere_keeps_that_admission(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path, max_kernels=10) as h:
        kernel_id = str(uuid.uuid4())
        # Another gateway replica admitted a kernel of this id a moment ago; this one has not heard of it yet.
        admissions = await h.admin.get("configmaps", ADMISSIONS_NAME, namespace=GATEWAY_NAMESPACE)
        admissions["data"] = {**(admissions.get("data") or {}), kernel_id: "alice"}
        await h.admin.replace("configmaps", ADMISSIONS_NAME, admissions, namespace=GATEWAY_NAMESPACE)

        with pytest.raises(KernelConflict):
            await h.start(KERNEL_ID=kernel_id)

        assert (await h.cluster.admitted()).get(kernel_id) == "alice", "the other replica's admission was released"
        assert await h.labelled("pods", kernel_id) == []


async def test_a_refused_start_whose_record_cannot_be_deleted_is_collected_past_its_deadline(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path, max_kernels=1, deadline_grace=0.5) as h:
        await h.start()  # the limit is reached
        kernel_id = str(uuid.uuid4())
        h.store.faults.inject("delete", "secrets", error=ServiceUnavailable("etcd is away"),
                              namespace=GATEWAY_NAMESPACE, times=CALL_ATTEMPTS)
        with pytest.raises(KernelLimitReached):
            await h.start(KERNEL_ID=kernel_id, KERNEL_LAUNCH_TIMEOUT="1")
        record = f"kernel-{kernel_id}"
        assert await h.admin.get("secrets", record, namespace=GATEWAY_NAMESPACE), "the record was deleted at once"

        await h.stack.records.wait_for(lambda secret: secret is None, namespace=GATEWAY_NAMESPACE, name=record,
                                 timeout=WAIT)
        await h.assert_nothing_left(kernel_id)
        assert kernel_id not in {k.id for k in h.service.list()}
