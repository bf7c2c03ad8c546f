"""A state machine over the kernel service on the simulated cluster, with real kernels.

Rules start, restart, interrupt and shut kernels down, kill or delete their
pods behind the gateway's back (while the API server may drop the gateway's
pod watch), make launches fail (a bad image, an API error while creating the
pod), in any order and in
each of the three namespace modes.  After every step the cluster must agree
with the service and with what a user was promised:

* at most one pod per kernel id, and each live kernel's pod runs where its
  mode puts it;
* nothing the gateway created for a kernel survives its shutdown or a failed
  launch (pod, namespace, role binding);
* what the gateway did not create (the gateway's namespace, the user's
  ``KERNEL_NAMESPACE`` and service account) is never deleted;
* the service lists exactly the kernels the model says are alive, each idle
  on the pod the cluster runs for it; a restarted kernel executes code.

Real kernels take a second or two to start, so examples and steps are few.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gateway.cluster.interface import ServiceUnavailable
from gateway.kernels.errors import KernelLaunchFailed, KernelNotFound
from gateway.kernels.kernel import AUTORESTARTING, IDLE
from tests.gatewayharness import (
    FAILING_IMAGE,
    GATEWAY_NAMESPACE,
    MISSING_IMAGE,
    MODES,
    USER_NAMESPACE,
    WAIT,
    Harness,
    StateLog,
    execute,
    gateway_harness,
)
from tests.loop_tasks import describe, still_running_after

pytestmark = pytest.mark.slow

MAX_LIVE = 2
SLEEP = "import time; print('sleeping', flush=True); time.sleep(120)"


class KernelServiceMachine(RuleBasedStateMachine):
    """The model: the ids of live kernels, of kernels shut down, of launches that failed."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory(prefix="kernel-machine-")
        self.harness_cm: Any = None
        self.h: Harness | None = None
        self.live: list[str] = []
        self.gone: list[str] = []

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 90))

    @initialize(mode=st.sampled_from(MODES))
    def set_up(self, mode: str) -> None:
        self.harness_cm = gateway_harness(Path(self.tmp.name), mode=mode, restart_limit=50)
        self.h = self.run(self.harness_cm.__aenter__())
        self.start()  # every example has a kernel to act on from its first step

    def teardown(self) -> None:
        try:
            if self.harness_cm is not None:
                self.run(self.harness_cm.__aexit__(None, None, None))
                left = still_running_after(self.loop)
                assert not left, f"tasks left behind:\n{describe(left)}"
                if self.h is not None:
                    for kernel_id in self.live + self.gone:
                        self.run(self.h.assert_nothing_left(kernel_id))
        finally:
            self.loop.close()
            self.tmp.cleanup()

    def pick(self, data: st.DataObject, *, live_only: bool = False) -> str:
        choices = self.live if live_only else self.live + self.gone + [str(uuid.uuid4())]
        return data.draw(st.sampled_from(choices))

    # ------------------------------------------------------------------ rules

    @precondition(lambda self: len(self.live) < MAX_LIVE)
    @rule()
    def start(self) -> None:
        assert self.h is not None
        kernel = self.run(self.h.start())
        assert kernel.state == IDLE
        self.live.append(kernel.id)

    @rule(how=st.sampled_from(["failing image", "missing image", "pod create refused"]))
    def start_fails(self, how: str) -> None:
        event("start_fails")
        assert self.h is not None
        kernel_id = str(uuid.uuid4())
        env = {"KERNEL_ID": kernel_id}
        if how == "pod create refused":
            self.h.store.faults.inject("create", "pods", error=ServiceUnavailable("etcd is away"), times=1)
        else:
            env["KERNEL_IMAGE"] = FAILING_IMAGE if how == "failing image" else MISSING_IMAGE
        with pytest.raises(KernelLaunchFailed):
            self.run(self.h.start(**env))
        self.gone.append(kernel_id)

    @rule(data=st.data())
    def restart(self, data: st.DataObject) -> None:
        event("restart")
        assert self.h is not None
        kernel_id = self.pick(data)
        if kernel_id in self.live:
            kernel = self.run(self.h.service.restart(kernel_id))
            assert kernel.id == kernel_id and kernel.state == IDLE
            assert self.run(execute(kernel, "6*7")) == ("ok", ["42"])
        else:
            with pytest.raises(KernelNotFound):
                self.run(self.h.service.restart(kernel_id))

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def interrupt(self, data: st.DataObject) -> None:
        """Interrupt a kernel running a long sleep: the execution ends with KeyboardInterrupt."""
        event("interrupt")
        assert self.h is not None
        kernel = self.h.service.get(self.pick(data, live_only=True))

        async def interrupted() -> str:
            started = asyncio.Event()
            running = asyncio.create_task(execute(kernel, SLEEP, started=started))
            await asyncio.wait_for(started.wait(), 30)
            await self.h.service.interrupt(kernel.id)
            status, _ = await running
            return status

        assert self.run(interrupted()) == "KeyboardInterrupt"

    @rule(data=st.data())
    def shutdown(self, data: st.DataObject) -> None:
        event("shutdown")
        assert self.h is not None
        kernel_id = self.pick(data)
        if kernel_id in self.live:
            self.run(self.h.service.shutdown(kernel_id))
            self.live.remove(kernel_id)
            self.gone.append(kernel_id)
        else:
            with pytest.raises(KernelNotFound):
                self.run(self.h.service.shutdown(kernel_id))

    @precondition(lambda self: self.live)
    @rule(data=st.data(), how=st.sampled_from(["deleted", "killed"]), drop_watch=st.booleans())
    def pod_dies(self, data: st.DataObject, how: str, drop_watch: bool) -> None:
        """Someone deletes the kernel's pod, or its container is OOM-killed: the gateway restarts the kernel.

        With ``drop_watch`` the API server also ends the gateway's pod watch: the death must still be seen.
        """
        event("pod_dies")
        assert self.h is not None
        h = self.h
        kernel = h.service.get(self.pick(data, live_only=True))
        [pod] = self.run(h.pods_of(kernel.id))
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        states = StateLog(kernel)
        if how == "deleted":
            self.run(h.admin.delete("pods", name, namespace=namespace))
        else:
            assert h.agent.oom_kill(namespace, name)
        if drop_watch:
            h.store.faults.drop_watches("pods")
        self.run(states.reach(AUTORESTARTING, IDLE))
        assert h.service.get(kernel.id) is kernel
        assert self.run(execute(kernel, "6*7")) == ("ok", ["42"])

    @precondition(lambda self: self.live)
    @rule(data=st.data(), race=st.sampled_from(["restart+shutdown", "restart+pod deleted", "shutdown+pod deleted"]))
    def racing(self, data: st.DataObject, race: str) -> None:
        """Two things happen to one kernel at once: the second waits for the first, never a second pod."""
        event(f"racing {race}")
        assert self.h is not None
        h = self.h
        kernel_id = self.pick(data, live_only=True)
        [pod] = self.run(h.pods_of(kernel_id))
        first, second = race.split("+")

        async def both() -> list[Any]:
            if second == "pod deleted":
                other = h.admin.delete("pods", pod["metadata"]["name"], namespace=pod["metadata"]["namespace"])
            else:
                other = getattr(h.service, second)(kernel_id)
            return await asyncio.gather(getattr(h.service, first)(kernel_id), other, return_exceptions=True)

        results = self.run(both())
        assert not isinstance(results[0], Exception), results
        if "shutdown" in race:
            self.live.remove(kernel_id)
            self.gone.append(kernel_id)
        else:
            kernel = h.service.get(kernel_id)
            assert kernel.state == IDLE
            assert self.run(execute(kernel, "6*7")) == ("ok", ["42"])

    # ------------------------------------------------------------------ invariants

    @invariant()
    def cluster_matches_the_model(self) -> None:
        if self.h is not None:
            self.run(self._check())

    async def _check(self) -> None:
        h = self.h
        assert h is not None
        assert sorted(k.id for k in h.service.list()) == sorted(self.live)
        pods = (await h.admin.list("pods", label_selector="component=kernel"))["items"]
        by_kernel: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            by_kernel.setdefault(pod["metadata"]["labels"]["kernel_id"], []).append(pod)
        assert all(len(p) <= 1 for p in by_kernel.values()), "a kernel has two pods"
        for kernel_id in self.live:
            kernel = h.service.get(kernel_id)
            # The service follows the kernel's status on its own iopub subscription, which may deliver the idle
            # status ending a step's last execution after the client's own copy.
            await kernel.wait_until(lambda k: k.state == IDLE, WAIT)
            assert kernel.running is not None
            [pod] = by_kernel.get(kernel_id, [None])
            assert pod is not None, f"live kernel {kernel_id} has no pod"
            assert pod["metadata"]["uid"] == kernel.running.pod_uid
            namespace = pod["metadata"]["namespace"]
            if h.mode == "own":
                assert namespace not in (GATEWAY_NAMESPACE, USER_NAMESPACE)
                assert await h.labelled("rolebindings", kernel_id) == [f"{namespace}/kernel-controller"]
            else:
                assert namespace == (GATEWAY_NAMESPACE if h.mode == "shared" else USER_NAMESPACE)
        for kernel_id in self.gone:
            assert kernel_id not in by_kernel, f"kernel {kernel_id} was shut down or failed but has a pod"
            await h.assert_nothing_left(kernel_id)
        assert await h.namespace_exists(GATEWAY_NAMESPACE)


KernelServiceMachine.TestCase.settings = settings(
    max_examples=8, stateful_step_count=8, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_kernel_service_machine = KernelServiceMachine.TestCase
