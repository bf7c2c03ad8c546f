"""Several gateways over one simulated cluster, with real kernels: every gateway serves every kernel.

Each gateway is a whole kernel side (``tests/gatewayharness.py``'s :class:`Stack`: informers,
response listener, provisioner, the duties' Lease, kernel service) over one store and one node
agent.  A gateway "killed" (:meth:`Stack.crash`) stops reaching the cluster at once and runs
none of its shutdown, as at SIGKILL: what it leaves must be served, taken over or collected by
the others.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.cluster.informer import Informer
from gateway.http.sessionstore import SessionStore
from gateway.kernels.errors import KernelLimitReached, KernelNotFound
from gateway.kernels.kernel import AUTORESTARTING, DEAD, IDLE, RESTARTING, STARTING, TERMINATING, Kernel, utcnow
from tests.gatewayharness import (
    GATEWAY_NAMESPACE,
    SILENT_IMAGE,
    WAIT,
    SharedCluster,
    Stack,
    StateLog,
    client_env,
    eventually,
    execute,
    shared_cluster,
)

pytestmark = pytest.mark.slow

SLEEP = "import time; print('sleeping', flush=True); time.sleep(120)"


async def served(stack: Stack, kernel_id: str, state: str = IDLE) -> Kernel:
    """The kernel as ``stack`` serves it, once it does so in ``state``."""
    def check() -> Kernel | None:
        try:
            kernel = stack.service.get(kernel_id)
        except KernelNotFound:
            return None
        return kernel if kernel.state == state else None

    return await eventually(check)


async def start(stack: Stack, mode: str = "own", **extra: str) -> Kernel:
    return await stack.service.start_kernel(name=None, env=client_env(mode, **extra), username_fallback="gateway")


def kernel_record(secret: dict[str, Any]) -> dict[str, Any]:
    """The record a kernel's Secret holds (``data.record``: base64 of JSON)."""
    return json.loads(base64.b64decode(secret["data"]["record"]))


async def record_of(cluster: SharedCluster, kernel_id: str) -> dict[str, Any]:
    return kernel_record(await cluster.admin.get("secrets", f"kernel-{kernel_id}", namespace=GATEWAY_NAMESPACE))


class PodUids:
    """Every pod uid of one kernel the cluster ever showed, from the administrator's own informer."""

    def __init__(self, cluster: SharedCluster, kernel_id: str) -> None:
        self.informer = Informer(cluster.admin, "pods", label_selector=f"kernel_id={kernel_id}")
        self.uids: list[str] = []

    async def __aenter__(self) -> PodUids:
        subscription = self.informer.subscribe()
        await self.informer.start()
        for pod in self.informer.items():
            self._saw(pod)
        self._task = asyncio.create_task(self._follow(subscription))
        return self

    async def _follow(self, subscription: Any) -> None:
        async with subscription as changes:
            async for event in changes:
                self._saw(event.object)

    def _saw(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        if uid not in self.uids:
            self.uids.append(uid)

    async def __aexit__(self, *exc_info: object) -> None:
        await self.informer.stop()
        await self._task


async def test_a_kernel_started_on_one_gateway_is_served_by_the_other(tmp_path: Path) -> None:
    async with shared_cluster(tmp_path) as cluster:
        a, b = await cluster.gateway("gateway-a"), await cluster.gateway("gateway-b")
        kernel = await start(a)
        on_b = await served(b, kernel.id)
        assert on_b.model()["id"] == kernel.id and on_b.name == kernel.name and on_b.username == "alice"
        assert [k.id for k in b.service.list()] == [kernel.id] == [k.id for k in a.service.list()]
        assert on_b.connection is not None and on_b.connection.key == kernel.connection.key
        assert await execute(on_b, "x = 6 * 7; x") == ("ok", ["42"])

        started = asyncio.Event()
        running = asyncio.create_task(execute(kernel, SLEEP, started=started))
        await asyncio.wait_for(started.wait(), 30)
        await b.service.interrupt(kernel.id)
        assert (await asyncio.wait_for(running, 30))[0] == "KeyboardInterrupt"

        heard = StateLog(on_b)
        [before] = await cluster.pods_of(kernel.id)
        assert await a.service.restart(kernel.id) is kernel
        await heard.reach(RESTARTING, STARTING, IDLE)
        [after] = await cluster.pods_of(kernel.id)
        assert after["metadata"]["uid"] != before["metadata"]["uid"]
        assert on_b.running is not None and on_b.running.pod_uid == after["metadata"]["uid"]
        assert await execute(on_b, "x") == ("NameError", [])
        assert await execute(on_b, "1+1") == ("ok", ["2"])

        on_a = StateLog(kernel)
        await b.service.shutdown(kernel.id)
        await on_a.reach(TERMINATING, DEAD)
        assert on_b.state == DEAD and a.service.list() == [] == b.service.list()
        with pytest.raises(KernelNotFound):
            a.service.get(kernel.id)
        await cluster.assert_nothing_left(kernel.id)


async def test_a_killed_gateways_kernels_are_served_by_the_others_and_its_successor(tmp_path: Path) -> None:
    async with shared_cluster(tmp_path) as cluster:
        a, b = await cluster.gateway("gateway-a"), await cluster.gateway("gateway-b")
        assert a.lease.leading and not b.lease.leading
        first, second = await start(a), await start(a, KERNEL_USERNAME="bob")
        await execute(first, "x = 41")
        await served(b, first.id)
        await served(b, second.id)

        await a.crash()
        assert await execute(b.service.get(first.id), "x + 1") == ("ok", ["42"])
        await eventually(lambda: b.lease.leading)  # the duties move within the lease duration

        c = await cluster.gateway("gateway-c")  # the successor: serves what is recorded as soon as it started
        assert sorted(k.id for k in c.service.list()) == sorted([first.id, second.id])
        assert await execute(c.service.get(first.id), "x + 2") == ("ok", ["43"])
        await c.service.shutdown(second.id)
        await cluster.assert_nothing_left(second.id)
        await eventually(lambda: second.id not in b.service)
        assert [k.id for k in b.service.list()] == [first.id]


async def test_the_duties_move_when_their_holder_dies_and_a_death_is_restarted_once(tmp_path: Path) -> None:
    async with shared_cluster(tmp_path) as cluster:
        a, b = await cluster.gateway("gateway-a"), await cluster.gateway("gateway-b")
        kernel = await start(b)
        on_a = await served(a, kernel.id)

        # Both alive: the holder (a) restarts a dead pod, once; b follows.
        async with PodUids(cluster, kernel.id) as pods:
            heard_b, heard_a = StateLog(kernel), StateLog(on_a)
            [pod] = await cluster.pods_of(kernel.id)
            await cluster.admin.delete("pods", pod["metadata"]["name"], namespace=pod["metadata"]["namespace"])
            await heard_a.reach(AUTORESTARTING, STARTING, IDLE)
            await heard_b.reach(AUTORESTARTING, STARTING, IDLE)
            assert (await record_of(cluster, kernel.id))["restart_count"] == 1
            assert kernel.running.pod_uid == on_a.running.pod_uid
        assert len(pods.uids) == 2, pods.uids
        assert heard_a.states.count(AUTORESTARTING) == heard_b.states.count(AUTORESTARTING) == 1

        # The holder dies: b takes the duties over and restarts the next death, once.
        await a.crash()
        await eventually(lambda: b.lease.leading)
        async with PodUids(cluster, kernel.id) as pods:
            heard = StateLog(kernel)
            [pod] = await cluster.pods_of(kernel.id)
            assert cluster.agent.oom_kill(pod["metadata"]["namespace"], pod["metadata"]["name"])
            await heard.reach(AUTORESTARTING, STARTING, IDLE)
            assert await execute(kernel, "1+1") == ("ok", ["2"])
        assert len(pods.uids) == 2, pods.uids
        assert heard.states.count(AUTORESTARTING) == 1


async def test_a_pod_that_died_while_no_gateway_held_the_duties_is_restarted_by_the_next_holder(
        tmp_path: Path) -> None:
    async with shared_cluster(tmp_path) as cluster:
        a = await cluster.gateway("gateway-a")
        kernel = await start(a)
        await a.crash()
        [pod] = await cluster.pods_of(kernel.id)
        await cluster.admin.delete("pods", pod["metadata"]["name"], namespace=pod["metadata"]["namespace"])
        b = await cluster.gateway("gateway-b")  # adopts the kernel as recorded: on its dead pod, until it leads
        await eventually(lambda: b.lease.leading)
        on_b = await served(b, kernel.id)
        await eventually(lambda: on_b.state == IDLE and on_b.running is not None
                         and on_b.running.pod_uid != pod["metadata"]["uid"])
        assert await execute(on_b, "1+1") == ("ok", ["2"])
        assert (await record_of(cluster, kernel.id))["restart_count"] == 1
        assert len(await cluster.pods_of(kernel.id)) == 1


async def test_restarts_asked_of_two_gateways_at_once_make_one_pod(tmp_path: Path) -> None:
    async with shared_cluster(tmp_path) as cluster:
        a, b = await cluster.gateway("gateway-a"), await cluster.gateway("gateway-b")
        kernel = await start(a)
        on_b = await served(b, kernel.id)
        async with PodUids(cluster, kernel.id) as pods:
            results = await asyncio.gather(a.service.restart(kernel.id), b.service.restart(kernel.id))
            assert results == [kernel, on_b]
            assert kernel.state == IDLE and on_b.state == IDLE
        assert len(pods.uids) == 2, f"one restart, one new pod: {pods.uids}"
        assert kernel.running.pod_uid == on_b.running.pod_uid == pods.uids[-1]
        assert await execute(on_b, "1+1") == ("ok", ["2"])


async def test_a_launch_abandoned_by_a_killed_gateway_is_removed_once_its_deadline_passes(tmp_path: Path) -> None:
    async with shared_cluster(tmp_path) as cluster:
        limits = {"deadline_grace": 0.5, "max_kernels": 10}  # so that the launch is admitted, and released
        holder = await cluster.gateway("gateway-holder", **limits)
        launcher = await cluster.gateway("gateway-launcher", **limits)
        assert holder.lease.leading
        kernel_id = str(uuid.uuid4())
        launch = asyncio.create_task(start(launcher, KERNEL_ID=kernel_id, KERNEL_IMAGE=SILENT_IMAGE,
                                           KERNEL_LAUNCH_TIMEOUT="3"))
        pod = await launcher.pods.wait_for(
            lambda p: p is not None and p["metadata"]["labels"].get("kernel_id") == kernel_id, timeout=WAIT)
        assert pod is not None and await cluster.labelled("namespaces", kernel_id)
        await launcher.crash()
        record = await record_of(cluster, kernel_id)
        assert record["phase"] == "launching" and kernel_id in await cluster.admitted()
        await holder.records.wait_for(lambda secret: secret is None, namespace=GATEWAY_NAMESPACE,
                                      name=f"kernel-{kernel_id}", timeout=WAIT)
        await holder.pods.wait_for(lambda p: p is None, namespace=pod["metadata"]["namespace"],
                                   name=pod["metadata"]["name"], timeout=WAIT)
        await cluster.assert_nothing_left(kernel_id)
        assert holder.service.list() == []
        with pytest.raises(Exception):  # noqa: B017 - the dead gateway's own launch ends in whatever it hit
            await launch


async def test_limits_hold_when_two_gateways_admit_at_once(tmp_path: Path) -> None:
    async with shared_cluster(tmp_path) as cluster:
        limits = {"max_kernels": 2, "max_kernels_per_user": 1}
        a, b = await cluster.gateway("gateway-a", **limits), await cluster.gateway("gateway-b", **limits)
        results = await asyncio.gather(start(a, KERNEL_USERNAME="alice"), start(b, KERNEL_USERNAME="alice"),
                                       start(a, KERNEL_USERNAME="bob"), start(b, KERNEL_USERNAME="carol"),
                                       return_exceptions=True)
        started = [r for r in results if isinstance(r, Kernel)]
        refused = [r for r in results if isinstance(r, KernelLimitReached)]
        assert len(started) == 2 and len(refused) == 2, results
        assert sum(1 for k in started if k.username == "alice") <= 1
        assert sorted((await cluster.admitted()).values()) == sorted(k.username for k in started)
        assert len((await cluster.admin.list("pods", label_selector="component=kernel"))["items"]) == 2
        one = started[0]
        await served(a, one.id)
        await a.service.shutdown(one.id)  # whichever gateway started it
        again = await start(b, KERNEL_USERNAME=one.username)
        assert again.username == one.username


async def test_a_gateway_stopped_on_a_real_cluster_leaves_its_kernels_to_the_others(tmp_path: Path) -> None:
    async with shared_cluster(tmp_path) as cluster:
        a, b = await cluster.gateway("gateway-a"), await cluster.gateway("gateway-b")
        kernel = await start(a)
        await served(b, kernel.id)
        await a.stop()  # SIGTERM: the kernel stays; the Lease is released
        lease = await cluster.admin.get("leases", "kernelgate-duties", namespace=GATEWAY_NAMESPACE)
        assert lease["spec"]["holderIdentity"] in ("", "gateway-b")
        on_b = b.service.get(kernel.id)
        assert await execute(on_b, "1+1") == ("ok", ["2"])
        await eventually(lambda: b.lease.leading)
        assert len(await cluster.pods_of(kernel.id)) == 1


async def test_a_client_connected_through_another_gateway_keeps_an_idle_kernel_from_the_culler(
        tmp_path: Path) -> None:
    async with shared_cluster(tmp_path) as cluster:
        # b renews its word every half idle timeout and the word counts for a whole one: a timeout of
        # a few seconds leaves b's renewals room to be late on a busy machine.
        culling = {"cull_idle_timeout": 4.0, "cull_interval": 3600.0}
        a, b = await cluster.gateway("gateway-a", **culling), await cluster.gateway("gateway-b", **culling)
        assert a.lease.leading
        kernel = await start(a)
        await served(b, kernel.id)
        b.service.connected(kernel.id)  # a notebook open through b, idle
        await a.records.wait_for(lambda s: s is not None and "gateway-b" in kernel_record(s)["connected"],
                                 namespace=GATEWAY_NAMESPACE, name=f"kernel-{kernel.id}", timeout=WAIT)
        await idle_for(a, kernel, 4.0)
        assert await a.service.cull_idle_kernels() == []

        b.service.disconnected(kernel.id)  # the notebook is closed: b takes its word back
        await a.records.wait_for(lambda s: s is not None and not kernel_record(s)["connected"],
                                 namespace=GATEWAY_NAMESPACE, name=f"kernel-{kernel.id}", timeout=WAIT)
        assert await a.service.cull_idle_kernels() == [kernel.id]
        await cluster.assert_nothing_left(kernel.id)


async def idle_for(stack: Stack, kernel: Kernel, seconds: float) -> None:
    """Wait until the kernel's last activity, as seen and as recorded, is more than ``seconds`` old."""
    record = stack.service.replica.records.get(kernel.id)
    assert record is not None
    last = max(kernel.last_activity, record.last_activity)
    await asyncio.sleep(max(0.0, (last - utcnow()).total_seconds() + seconds + 0.1))


async def test_a_launch_under_way_when_its_gateway_is_stopped_is_completed_for_the_others(tmp_path: Path) -> None:
    async with shared_cluster(tmp_path) as cluster:
        a, b = await cluster.gateway("gateway-a"), await cluster.gateway("gateway-b")
        kernel_id = str(uuid.uuid4())
        launch = asyncio.create_task(start(a, KERNEL_ID=kernel_id))
        await a.pods.wait_for(lambda p: p is not None and p["metadata"]["labels"].get("kernel_id") == kernel_id,
                              timeout=WAIT)
        await a.stop()  # SIGTERM mid-launch: the launch is finished within the grace, then left to b
        assert (await launch).id == kernel_id
        on_b = await served(b, kernel_id)
        assert await execute(on_b, "1+1") == ("ok", ["2"])


async def test_a_session_created_through_one_gateway_is_served_by_the_other_and_ends_with_its_kernel(
        tmp_path: Path) -> None:
    async with shared_cluster(tmp_path) as cluster:
        a, b = await cluster.gateway("gateway-a"), await cluster.gateway("gateway-b")
        kernel = await start(a)
        await served(b, kernel.id)
        sessions = SessionStore()
        on_a, on_b = a.service.replica.records, b.service.replica.records

        def served_by(stack: Stack) -> Callable[[str], bool]:
            return lambda kernel_id: kernel_id in stack.service

        def recorded(path: str) -> Callable[[Any], bool]:
            return lambda secret: secret is not None and [s["path"] for s in kernel_record(secret)["sessions"].values()] \
                == [path]

        session = await sessions.add(on_a, path="work/a.ipynb", name="a.ipynb", type="notebook", kernel_id=kernel.id)
        await b.records.wait_for(recorded("work/a.ipynb"), namespace=GATEWAY_NAMESPACE, name=f"kernel-{kernel.id}",
                                 timeout=WAIT)
        assert sessions.find(on_b, path="work/a.ipynb", alive=served_by(b)) == session
        assert sessions.all(on_b, served_by(b)) == [session]

        renamed = await sessions.update(on_b, session, path="work/b.ipynb")  # changed through the other one
        await a.records.wait_for(recorded("work/b.ipynb"), namespace=GATEWAY_NAMESPACE, name=f"kernel-{kernel.id}",
                                 timeout=WAIT)
        assert sessions.find(on_a, session_id=session.id, alive=served_by(a)) == renamed
        assert sessions.find(on_a, path="work/a.ipynb", alive=served_by(a)) is None

        await b.service.shutdown(kernel.id)
        await eventually(lambda: kernel.id not in a.service)
        assert sessions.all(on_a, served_by(a)) == [] == sessions.all(on_b, served_by(b))
        await cluster.assert_nothing_left(kernel.id)
