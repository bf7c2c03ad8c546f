"""A kernel's namespace deleted under it: the auto-restart pauses between failed relaunches, then creates the
namespace again, or gives the kernel up saying why.

The namespace is held ``Terminating`` by a ConfigMap with a finalizer of the test's (as a real cluster holds
it while its contents go), so the first relaunches fail on it for as long as the test decides.  The pauses
are counted through the kernel service's ``restart_pauses.sleep`` instead of being waited out: the test acts
in the pause itself (letting the namespace go), so nothing depends on timing.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from gateway.cluster.interface import Cluster, NotFound
from gateway.kernels.kernel import AUTORESTARTING, DEAD, IDLE
from gateway.kernels.restarts import RestartPauses
from tests.gatewayharness import KERNEL_CLUSTER_ROLE, StateLog, execute, gateway_harness
from tests.httpharness import read, running_gateway

pytestmark = pytest.mark.slow

BACKOFF = 0.4
CAP = 5.0
HOLD = "example.com/hold"


async def hold_terminating(admin: Cluster, namespace: str) -> None:
    """Put an object in ``namespace`` that only the test lets go: deleted, the namespace stays ``Terminating``."""
    await admin.create("configmaps", {"metadata": {"name": "hold", "finalizers": [HOLD]}}, namespace=namespace)


async def let_go(admin: Cluster, namespace: str) -> None:
    """Remove the finalizer: the namespace's last content goes, and with it the namespace."""
    await admin.patch("configmaps", "hold", {"metadata": {"finalizers": None}}, namespace=namespace)


async def uid_of(admin: Cluster, namespace: str) -> str | None:
    try:
        return (await admin.get("namespaces", namespace))["metadata"]["uid"]
    except NotFound:
        return None


class CountedPauses:
    """``RestartPauses.sleep`` replaced: each pause drawn is recorded, and ``at_pause[n]`` runs in the n-th."""

    def __init__(self, pauses: RestartPauses, at_pause: dict[int, Any] | None = None) -> None:
        self.drawn: list[float] = []
        self._at_pause = at_pause or {}
        pauses.sleep = self.sleep

    async def sleep(self, delay: float) -> None:
        self.drawn.append(delay)
        action = self._at_pause.get(len(self.drawn))
        if action is not None:
            await action()


def assert_backoff(drawn: list[float]) -> None:
    """The n-th pause lies between half and all of ``BACKOFF * 2**(n-1)`` (capped): jittered, doubling."""
    for n, delay in enumerate(drawn):
        ceiling = min(CAP, BACKOFF * 2 ** n)
        assert ceiling / 2 <= delay <= ceiling, (n, delay, drawn)


async def test_the_namespace_the_gateway_made_is_made_again_after_paused_retries(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path, restart_backoff=BACKOFF, restart_backoff_cap=CAP) as h:
        kernel = await h.start()
        namespace = kernel.placement.namespace  # type: ignore[union-attr]
        first_uid = await uid_of(h.admin, namespace)
        assert first_uid is not None and await h.labelled("rolebindings", kernel.id) == [f"{namespace}/{KERNEL_CLUSTER_ROLE}"]
        await hold_terminating(h.admin, namespace)

        async def namespace_gone() -> None:
            assert await uid_of(h.admin, namespace) == first_uid  # still terminating until now
            await let_go(h.admin, namespace)
            assert await uid_of(h.admin, namespace) is None

        pauses = CountedPauses(h.service.restart_pauses, {2: namespace_gone})
        states = StateLog(kernel)
        await h.admin.delete("namespaces", namespace)

        await states.reach(AUTORESTARTING, IDLE)
        assert len(pauses.drawn) == 2  # two relaunches failed on the terminating namespace, the third did not
        assert_backoff(pauses.drawn)
        assert kernel.record is not None and kernel.record.restart_count == 3
        second_uid = await uid_of(h.admin, namespace)
        assert second_uid not in (None, first_uid)
        assert await h.labelled("namespaces", kernel.id) == [f"/{namespace}"]
        assert await h.labelled("rolebindings", kernel.id) == [f"{namespace}/{KERNEL_CLUSTER_ROLE}"]
        assert await execute(kernel, "6*7") == ("ok", ["42"])


def test_the_delays_are_jittered() -> None:
    pauses = RestartPauses(BACKOFF, CAP, rng=random.Random(7))
    drawn = [[backoff.fail() for _ in range(6)] for backoff in (pauses.backoff(), pauses.backoff())]
    for delays in drawn:
        assert_backoff(delays)
    assert drawn[0] != drawn[1]  # two kernels failing together do not retry in step


async def test_a_kernel_whose_namespace_stays_terminating_is_given_up_saying_why(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, restart_limit=3) as gw:
        kernel = await gw.start_kernel()
        ws = await gw.websocket(kernel["id"])
        [pod] = (await gw.cluster.admin.list("pods", label_selector=f"kernel_id={kernel['id']}"))["items"]
        namespace = pod["metadata"]["namespace"]
        await hold_terminating(gw.cluster.admin, namespace)
        pauses = CountedPauses(gw.gateway.service.restart_pauses)  # type: ignore[union-attr]
        await gw.cluster.admin.delete("namespaces", namespace)

        heard = []
        while "dead" not in heard:
            message = await read(ws)
            if message["msg_type"] == "status" and not message["parent_header"]:  # the gateway's, not the kernel's
                heard.append(message["content"]["execution_state"])
        assert heard[0] == "restarting"
        await gw.closed(ws)
        assert ws.close_code == 1000
        assert ws.close_reason == f"The kernel died and could not be restarted: namespace {namespace} is being deleted"
        assert len(pauses.drawn) == 2  # between the three relaunches, none after the last
        assert (await gw.call("GET", f"/api/kernels/{kernel['id']}"))[0] == 404
        await let_go(gw.cluster.admin, namespace)
        assert await uid_of(gw.cluster.admin, namespace) is None


async def test_a_kernel_given_up_is_dead_with_the_reason(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path, restart_limit=2) as h:
        kernel = await h.start()
        namespace = kernel.placement.namespace  # type: ignore[union-attr]
        await hold_terminating(h.admin, namespace)
        pauses = CountedPauses(h.service.restart_pauses)
        states = StateLog(kernel)
        await h.admin.delete("namespaces", namespace)
        await states.reach(AUTORESTARTING, DEAD)
        assert kernel.reason == f"The kernel died and could not be restarted: namespace {namespace} is being deleted"
        assert len(pauses.drawn) == 1 and h.service.list() == []
        await let_go(h.admin, namespace)
        await h.assert_nothing_left(kernel.id)
