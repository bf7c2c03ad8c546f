"""The kernel service with real kernels on the simulated cluster: what a gateway's users rely on."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.cluster.interface import ServiceUnavailable
from gateway.kernels.channels import KernelChannels
from gateway.kernels.errors import (
    InvalidKernelRequest,
    KernelConflict,
    KernelError,
    KernelLaunchFailed,
    KernelLimitReached,
    KernelNotFound,
    UnknownKernelSpec,
    UserNotAuthorized,
)
from gateway.kernels.kernel import AUTORESTARTING, DEAD, IDLE, RESTARTING, STARTING, TERMINATING, utcnow
from tests.gatewayharness import (
    EXECUTE_CONTENT,
    FAILING_IMAGE,
    MISSING_IMAGE,
    SILENT_IMAGE,
    USER_NAMESPACE,
    WAIT,
    StateLog,
    execute,
    gateway_harness,
    kernelspec_variant,
)

pytestmark = pytest.mark.slow

SLEEP = "import time; print('sleeping', flush=True); time.sleep(120)"


@pytest.mark.parametrize("mode", ["own", "shared", "user"])
async def test_start_execute_shutdown(tmp_path: Path, mode: str) -> None:
    async with gateway_harness(tmp_path, mode=mode) as h:
        kernel = await h.start()
        assert kernel.state == IDLE and h.service.list() == [kernel]
        model = kernel.model()
        assert set(model) == {"id", "name", "last_activity", "execution_state", "connections"}
        assert model["name"] == "python_kubernetes" and model["last_activity"].endswith("Z")
        assert await execute(kernel, "1+1") == ("ok", ["2"])
        [pod] = await h.pods_of(kernel.id)
        namespace = pod["metadata"]["namespace"]
        expected = {"own": namespace, "shared": "enterprise-gateway", "user": USER_NAMESPACE}[mode]
        assert namespace == expected and (mode != "own" or namespace not in ("enterprise-gateway", USER_NAMESPACE))

        await h.service.shutdown(kernel.id)
        assert kernel.state == DEAD and h.service.list() == []
        await h.assert_nothing_left(kernel.id)
        assert await h.namespace_exists("enterprise-gateway")
        with pytest.raises(KernelNotFound):
            h.service.get(kernel.id)


async def test_restart_keeps_id_and_namespace_and_loses_state(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path) as h:
        kernel = await h.start()
        await execute(kernel, "x = 41")
        [before] = await h.pods_of(kernel.id)
        states = StateLog(kernel)
        restarted = await h.service.restart(kernel.id)
        assert restarted is kernel and kernel.state == IDLE
        assert states.states[:2] == [RESTARTING, STARTING] and states.states[-1] == IDLE
        [after] = await h.pods_of(kernel.id)
        assert after["metadata"]["namespace"] == before["metadata"]["namespace"]
        assert after["metadata"]["uid"] != before["metadata"]["uid"]
        assert await execute(kernel, "x + 1") == ("NameError", [])
        assert await execute(kernel, "1+1") == ("ok", ["2"])
        assert await h.labelled("rolebindings", kernel.id) != []


async def test_concurrent_restarts_and_shutdown_never_make_two_pods(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path) as h:
        kernel = await h.start()
        results = await asyncio.gather(h.service.restart(kernel.id), h.service.restart(kernel.id),
                                       h.service.shutdown(kernel.id), return_exceptions=True)
        assert results[0] is kernel and results[1] is kernel and results[2] is None
        assert kernel.state == DEAD
        await h.assert_nothing_left(kernel.id)


@pytest.mark.parametrize("operation", ["restart", "shutdown"])
async def test_an_operation_racing_an_external_pod_deletion(tmp_path: Path, operation: str) -> None:
    async with gateway_harness(tmp_path) as h:
        kernel = await h.start()
        [pod] = await h.pods_of(kernel.id)
        delete = h.admin.delete("pods", pod["metadata"]["name"], namespace=pod["metadata"]["namespace"])
        results = await asyncio.gather(getattr(h.service, operation)(kernel.id), delete, return_exceptions=True)
        assert not isinstance(results[0], Exception), results
        if operation == "shutdown":
            await h.assert_nothing_left(kernel.id)
            return
        [again] = await h.pods_of(kernel.id)
        assert again["metadata"]["uid"] == kernel.running.pod_uid != pod["metadata"]["uid"]
        assert kernel.state == IDLE and await execute(kernel, "1+1") == ("ok", ["2"])
        assert len(await h.pods_of(kernel.id)) == 1


async def test_interrupt_stops_a_sleep(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path) as h:
        kernel = await h.start()
        started = asyncio.Event()
        running = asyncio.create_task(execute(kernel, SLEEP, started=started))
        await asyncio.wait_for(started.wait(), 30)
        await h.service.interrupt(kernel.id)
        status, _ = await asyncio.wait_for(running, 30)
        assert status == "KeyboardInterrupt"
        assert await execute(kernel, "1+1") == ("ok", ["2"])


async def test_interrupt_by_message(tmp_path: Path) -> None:
    """``interrupt_mode: message`` kernelspecs are interrupted with interrupt_request on control, not a signal."""
    specs = kernelspec_variant(tmp_path / "specs", "python_message", interrupt_mode="message")
    async with gateway_harness(tmp_path, spec_paths=(specs,)) as h:
        kernel = await h.service.start_kernel(name="python_message", env=h.env(), username_fallback="gateway")
        assert kernel.request.spec.interrupt_mode == "message"
        started = asyncio.Event()
        running = asyncio.create_task(execute(kernel, SLEEP, started=started))
        await asyncio.wait_for(started.wait(), 30)
        await h.service.interrupt(kernel.id)
        status, _ = await asyncio.wait_for(running, 30)
        assert status == "KeyboardInterrupt"


async def test_execution_state_follows_iopub(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path) as h:
        kernel = await h.start()
        before = kernel.last_activity
        started = asyncio.Event()
        running = asyncio.create_task(execute(kernel, SLEEP, started=started))
        await asyncio.wait_for(started.wait(), 30)
        # the service's own iopub subscription sees the same busy status as the client
        await kernel.wait_until(lambda k: k.execution_state == "busy", 30)
        assert kernel.model()["execution_state"] == "busy" and kernel.last_activity > before
        await h.service.interrupt(kernel.id)
        await asyncio.wait_for(running, 30)
        await kernel.wait_until(lambda k: k.execution_state == "idle", 30)


async def test_shutdown_keeps_the_users_namespace(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path, mode="user") as h:
        kernel = await h.start()
        await h.service.shutdown(kernel.id)
        await h.assert_nothing_left(kernel.id)
        namespace = await h.admin.get("namespaces", USER_NAMESPACE)
        assert namespace["metadata"]["labels"]["owner"] == "alice"


@pytest.mark.parametrize("mode", ["own", "user"])
async def test_auto_restart_after_the_pod_is_deleted(tmp_path: Path, mode: str) -> None:
    async with gateway_harness(tmp_path, mode=mode) as h:
        kernel = await h.start()
        await execute(kernel, "x = 1")
        [pod] = await h.pods_of(kernel.id)
        states = StateLog(kernel)
        await h.admin.delete("pods", pod["metadata"]["name"], namespace=pod["metadata"]["namespace"])
        await states.reach(AUTORESTARTING, STARTING, IDLE)
        assert h.service.get(kernel.id) is kernel
        [again] = await h.pods_of(kernel.id)
        assert again["metadata"]["uid"] != pod["metadata"]["uid"]
        assert again["metadata"]["namespace"] == pod["metadata"]["namespace"]
        assert await execute(kernel, "1+1") == ("ok", ["2"])
        assert await execute(kernel, "x") == ("NameError", [])


async def test_a_death_while_the_watch_is_down_is_still_seen(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path) as h:
        kernel = await h.start()
        [pod] = await h.pods_of(kernel.id)
        states = StateLog(kernel)
        h.store.faults.drop_watches("pods")
        await h.admin.delete("pods", pod["metadata"]["name"], namespace=pod["metadata"]["namespace"])
        await states.reach(AUTORESTARTING, IDLE)
        assert await execute(kernel, "1+1") == ("ok", ["2"])


async def test_a_death_while_the_api_refuses_record_writes_is_restarted_once_it_takes_them(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path) as h:
        kernel = await h.start()
        [pod] = await h.pods_of(kernel.id)
        states = StateLog(kernel)
        # More refusals than one record write retries: the restart's first claim of the record fails.
        h.store.faults.inject("update", "secrets", error=ServiceUnavailable("etcd is away"), times=5)
        await h.admin.delete("pods", pod["metadata"]["name"], namespace=pod["metadata"]["namespace"])
        await states.reach(AUTORESTARTING, IDLE)
        assert await execute(kernel, "1+1") == ("ok", ["2"])


async def test_auto_restart_after_the_kernel_process_dies(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path) as h:
        kernel = await h.start()
        states = StateLog(kernel)
        async with KernelChannels(kernel.connection, channels=("shell",)) as channels:
            await channels.send("shell", "execute_request", {"code": "import os; os._exit(3)", **EXECUTE_CONTENT})
            await states.reach(AUTORESTARTING, IDLE)
        assert await execute(kernel, "1+1") == ("ok", ["2"])


async def test_a_kernel_dying_past_the_restart_limit_is_released(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path, restart_limit=0) as h:
        kernel = await h.start()
        states = StateLog(kernel)
        [pod] = await h.pods_of(kernel.id)
        await h.admin.delete("pods", pod["metadata"]["name"], namespace=pod["metadata"]["namespace"])
        await states.reach(DEAD)
        assert kernel.reason and h.service.list() == []
        await h.assert_nothing_left(kernel.id)


@pytest.mark.parametrize("mode", ["own", "user"])
@pytest.mark.parametrize("image", [FAILING_IMAGE, MISSING_IMAGE])
async def test_a_failed_launch_leaves_nothing(tmp_path: Path, mode: str, image: str) -> None:
    async with gateway_harness(tmp_path, mode=mode) as h:
        kernel_id = str(uuid.uuid4())
        with pytest.raises(KernelLaunchFailed) as caught:
            await h.start(KERNEL_IMAGE=image, KERNEL_ID=kernel_id)
        # A client's image that cannot be pulled is the request's mistake; a kernel that exits is the gateway's.
        assert caught.value.status == (400 if image == MISSING_IMAGE else 500) and caught.value.message
        assert h.service.list() == []
        await h.assert_nothing_left(kernel_id)


async def test_the_clients_launch_timeout_is_honoured(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path) as h:
        kernel_id = str(uuid.uuid4())
        with pytest.raises(KernelLaunchFailed) as caught:
            await h.start(KERNEL_IMAGE=SILENT_IMAGE, KERNEL_ID=kernel_id, KERNEL_LAUNCH_TIMEOUT="1.5")
        assert caught.value.status == 504
        await h.assert_nothing_left(kernel_id)


async def test_stopping_the_gateway_during_a_start_leaves_nothing(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path) as h:
        kernel_id = str(uuid.uuid4())
        start = asyncio.create_task(h.start(KERNEL_IMAGE=SILENT_IMAGE, KERNEL_ID=kernel_id))
        pod = await h.pods.wait_for(lambda p: p is not None and p["metadata"]["labels"].get("kernel_id") == kernel_id,
                                    timeout=30)
        assert pod is not None
        await h.service.stop()
        with pytest.raises(KernelError) as caught:
            await start
        assert caught.value.status == 503
        await h.assert_nothing_left(kernel_id)


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"name": "no_such_kernel", "env": {}}, UnknownKernelSpec),
    ({"name": None, "env": {"KERNEL_X": "$(id)"}}, InvalidKernelRequest),
    ({"name": None, "env": {"KERNEL_ID": "1234"}}, InvalidKernelRequest),
    ({"name": None, "env": {"KERNEL_LAUNCH_TIMEOUT": "-1"}}, InvalidKernelRequest),
    ({"name": None, "env": {"KERNEL_USERNAME": "root"}}, UserNotAuthorized),
])
async def test_refused_requests_launch_nothing(tmp_path: Path, kwargs: dict, error: type) -> None:
    async with gateway_harness(tmp_path) as h:
        with pytest.raises(error):
            await h.service.start_kernel(**kwargs, username_fallback="gateway")
        assert h.service.list() == []
        listing = await h.admin.list("pods")
        assert listing["items"] == []


async def test_kernelspec_users_are_enforced_at_start(tmp_path: Path) -> None:
    proxy = {"class_name": "enterprise_gateway.services.processproxies.k8s.KubernetesProcessProxy",
             "config": {"image_name": "elyra/kernel-py:dev", "authorized_users": "bob"}}
    specs = kernelspec_variant(tmp_path / "specs", "python_bob", metadata={"process_proxy": proxy})
    async with gateway_harness(tmp_path, spec_paths=(specs,)) as h:
        with pytest.raises(UserNotAuthorized) as caught:
            await h.service.start_kernel(name="python_bob", env=h.env(), username_fallback="gateway")
        assert caught.value.status == 403 and (await h.admin.list("pods"))["items"] == []
        kernel = await h.service.start_kernel(name="python_bob", env=h.env(KERNEL_USERNAME="bob"),
                                              username_fallback="gateway")
        assert kernel.name == "python_bob" and kernel.username == "bob"


async def test_the_kernel_sees_the_environment_it_was_given(tmp_path: Path) -> None:
    inherited = {"TZ": "Pacific/Auckland", "EG_AUTH_TOKEN": "gateway-secret"}
    async with gateway_harness(tmp_path, inherited_env=inherited, client_envs=frozenset({"PROJECT"})) as h:
        kernel = await h.start(KERNEL_TEAM="blue", PROJECT="p1", HOME_SECRET="no")
        [pod] = await h.pods_of(kernel.id)
        names = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
        assert {"KERNEL_TEAM", "PROJECT", "TZ", "KERNEL_GATEWAY", "KERNEL_USERNAME", "KERNEL_ID"} <= names
        assert not names & {"EG_AUTH_TOKEN", "HOME_SECRET"}
        code = "import os; print([os.environ.get(n) for n in ('KERNEL_TEAM', 'PROJECT', 'TZ', 'KERNEL_GATEWAY', " \
               "'EG_AUTH_TOKEN', 'HOME_SECRET')])"
        status, outputs = await execute(kernel, code)
        assert status == "ok"
        assert outputs == ["['blue', 'p1', 'Pacific/Auckland', '1', None, None]\n"]


async def test_a_kernel_id_in_use_is_a_conflict(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path) as h:
        kernel = await h.start()
        with pytest.raises(KernelConflict) as caught:
            await h.start(KERNEL_ID=kernel.id)
        assert caught.value.status == 409 and h.service.list() == [kernel]
        assert len(await h.pods_of(kernel.id)) == 1


async def test_limits_count_starts_in_progress(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path, max_kernels=2, max_kernels_per_user=1) as h:
        starts = [h.start(KERNEL_USERNAME="alice"), h.start(KERNEL_USERNAME="alice"),
                  h.start(KERNEL_USERNAME="bob"), h.start(KERNEL_USERNAME="carol")]
        results = await asyncio.gather(*starts, return_exceptions=True)
        refused = [r for r in results if isinstance(r, KernelLimitReached)]
        started = [r for r in results if not isinstance(r, Exception)]
        assert len(refused) == 2 and len(started) == 2, results
        assert all(r.status == 403 for r in refused)
        assert sorted(k.username for k in started) == ["alice", "bob"]
        listing = await h.admin.list("pods")
        assert len(listing["items"]) == 2
        await h.service.shutdown(started[0].id)
        carol = await h.start(KERNEL_USERNAME="carol")
        assert carol.username == "carol"


async def test_interrupt_and_restart_of_unknown_kernels(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path) as h:
        for operation in (h.service.interrupt, h.service.restart, h.service.shutdown):
            with pytest.raises(KernelNotFound):
                await operation(str(uuid.uuid4()))


async def test_using_kernels_costs_the_cluster_nothing(tmp_path: Path) -> None:
    """Executing, interrupting, culling checks and client bookkeeping make no API call: the informer's
    one watch tells the gateway what it needs to know about its kernels' pods.  (The duties' Lease is
    renewed all along, once per gateway whatever its kernels: those calls are not the kernels'.)"""
    async with gateway_harness(tmp_path, cull_idle_timeout=3600) as h:
        kernels = [await h.start(), await h.start()]
        before = h.stack.kernel_calls()
        for kernel in kernels:
            assert await execute(kernel, "1+1") == ("ok", ["2"])
            h.service.connected(kernel.id)
            h.service.record_activity(kernel.id, "execute_request")
            # The service follows the kernel's status on its own iopub subscription, which may deliver the
            # idle status ending the execution after the client's copy.
            await kernel.wait_until(lambda k: k.state == IDLE, 30)
            assert h.service.get(kernel.id).model()["execution_state"] == IDLE
            h.service.disconnected(kernel.id)
        started = asyncio.Event()
        running = asyncio.create_task(execute(kernels[0], SLEEP, started=started))
        await asyncio.wait_for(started.wait(), 30)
        await h.service.interrupt(kernels[0].id)
        await asyncio.wait_for(running, 30)
        assert await h.service.cull_idle_kernels() == []
        assert h.stack.kernel_calls() == before


async def test_connections_and_client_activity_are_counted(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path) as h:
        kernel = await h.start()
        h.service.connected(kernel.id)
        h.service.connected(kernel.id)
        h.service.disconnected(kernel.id)
        assert kernel.model()["connections"] == 1
        kernel.last_activity = utcnow() - timedelta(hours=1)
        h.service.record_activity(kernel.id, "kernel_info_request")
        assert utcnow() - kernel.last_activity > timedelta(minutes=30)
        h.service.record_activity(kernel.id, "execute_request")
        assert utcnow() - kernel.last_activity < timedelta(minutes=1)


async def test_culling_respects_connections_and_busy(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path, cull_idle_timeout=60, cull_interval=3600) as h:
        kernel = await h.start()
        kernel.last_activity = utcnow() - timedelta(minutes=5)
        h.service.connected(kernel.id)
        assert await h.service.cull_idle_kernels() == []
        h.service.disconnected(kernel.id)
        kernel.execution_state = "busy"
        assert await h.service.cull_idle_kernels() == []
        kernel.execution_state = "idle"
        assert await h.service.cull_idle_kernels() == [kernel.id]
        assert kernel.state == DEAD
        await h.assert_nothing_left(kernel.id)


async def test_recent_activity_is_not_culled(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path, cull_idle_timeout=60, cull_interval=3600) as h:
        kernel = await h.start()
        stale = kernel.last_activity = utcnow() - timedelta(minutes=5)
        await execute(kernel, "1+1")
        # the gateway hears the execution on its own iopub subscription, a moment after this client
        await kernel.wait_until(lambda k: k.last_activity > stale, WAIT)
        assert await h.service.cull_idle_kernels() == []


async def test_the_cull_timer_shuts_idle_kernels_down(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path, cull_idle_timeout=0.5, cull_interval=0.2) as h:
        kernel = await h.start()
        await StateLog(kernel).reach(TERMINATING, DEAD)
        await h.assert_nothing_left(kernel.id)


async def test_stopping_the_service_leaves_nothing(tmp_path: Path) -> None:
    async with gateway_harness(tmp_path) as h:
        first, second = await asyncio.gather(h.start(), h.start())
        await h.service.stop()
        assert h.service.list() == [] and first.state == DEAD and second.state == DEAD
        await h.assert_nothing_left(first.id)
        await h.assert_nothing_left(second.id)
        with pytest.raises(Exception) as caught:
            await h.start()
        assert getattr(caught.value, "status", None) == 503
