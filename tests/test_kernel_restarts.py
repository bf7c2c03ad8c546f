"""Restarts that fail, and the count of automatic restarts: what a client is left with.

A restart the client asked for whose new pod cannot be created ends the kernel: the client gets the
error, the kernel is no longer listed and nothing of it is left in the cluster.  Automatic restarts
are counted in a row: a kernel that dies again at once is given up past ``restart_limit``, but one
that had been running for a while (``STABLE_START_SECONDS``) starts counting from zero again.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.cluster.interface import Forbidden
from gateway.kernels.kernel import AUTORESTARTING, DEAD, IDLE, Kernel
from gateway.kernels.operations import STABLE_START_SECONDS
from tests.gatewayharness import Harness, StateLog, execute, gateway_harness
from tests.httpharness import running_gateway

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", ["own", "shared"])
async def test_a_restart_whose_pod_cannot_be_created_ends_the_kernel(tmp_path: Path, mode: str) -> None:
    traits = {"shared_namespace": True} if mode == "shared" else {}
    async with running_gateway(tmp_path, **traits) as gw:
        kernel = await gw.start_kernel()
        kernel_id = kernel["id"]
        before = await gw.kernel_objects()
        assert any(kind == "pods" for kind, _, _ in before)

        gw.cluster.store.faults.inject("create", "pods", error=Forbidden("pods are not allowed here today"))
        status, body, _ = await gw.call("POST", f"/api/kernels/{kernel_id}/restart")

        assert status == 403 and "pods are not allowed here today" in body["message"]
        assert (await gw.call("GET", f"/api/kernels/{kernel_id}"))[0] == 404
        assert (await gw.call("GET", "/api/kernels"))[1] == []
        assert await gw.kernel_objects() == set(), "a kernel whose restart failed left objects behind"


async def _kill_pod(h: Harness, kernel: Kernel) -> None:
    [pod] = await h.pods_of(kernel.id)
    await h.admin.delete("pods", pod["metadata"]["name"], namespace=pod["metadata"]["namespace"])


async def test_a_kernel_that_ran_for_a_while_counts_its_restarts_from_zero_again(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path, restart_limit=1) as h:
        kernel = await h.start()
        states = StateLog(kernel)
        await _kill_pod(h, kernel)
        await states.reach(AUTORESTARTING, IDLE)  # the first restart of the limit's one
        assert h.service.get(kernel.id).record.restart_count == 1  # type: ignore[union-attr]

        # The kernel has run on its new pod for longer than STABLE_START_SECONDS (as its record says).
        records = h.service.replica.records
        long_ago = kernel.record.launched_at - timedelta(seconds=STABLE_START_SECONDS + 60)  # type: ignore[union-attr]
        await records.modify(kernel.id, lambda r: dataclasses.replace(r, launched_at=long_ago))

        await _kill_pod(h, kernel)
        await states.reach(AUTORESTARTING, IDLE, AUTORESTARTING, IDLE)  # restarted again: the count began anew
        assert h.service.get(kernel.id) is kernel and kernel.record.restart_count == 1  # type: ignore[union-attr]
        assert await execute(kernel, "1+1") == ("ok", ["2"])

        await _kill_pod(h, kernel)  # dies again at once: past the limit
        await states.reach(DEAD)
        assert h.service.list() == [] and "restarted 1 times" in kernel.reason
        await h.assert_nothing_left(kernel.id)
