"""A state machine over the kernel service: several gateway replicas on one simulated cluster, with real kernels.

Rules start, stop (SIGTERM) and kill (SIGKILL) replicas; send any request (start, shutdown,
restart, interrupt, list) to any live replica, for kernels in each namespace mode (a namespace
per kernel, the client's ``KERNEL_NAMESPACE``, the shared namespace); kill or delete kernel pods
behind the gateway's back, delete a kernel's namespace, race a shutdown or restart with either;
kill a replica in the middle of a launch; and send requests while the API server fails
(``tests/kernelmachine_faults.py``: 5xx, 429, 409, latency, an outage, dropped watches, 410 Gone).

After every step, once the cluster has settled (``tests/kernelmachine_cluster.py``):

* no orphan: every kernel-labelled object belongs to a kernel recorded running, on exactly one
  running pod, in the namespace its mode puts it; nothing the gateway did not create is deleted;
* the model equals the cluster: the kernels started and not shut down run, nothing of a kernel
  shut down or whose start failed is left, and the limits (``EG_MAX_KERNELS``, per user) hold;
* every live replica serves exactly those kernels, each up on the pod the cluster runs for it;
* each pod death was restarted exactly once (one new pod), by the lease holder;
* every request was answered within its bound, with a value or a status.

The ``ci`` profile runs a few short examples; ``HYPOTHESIS_PROFILE=deep`` many more (``tests/depth.py``).
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

from gateway.kernels.kernel import IDLE
from tests import depth
from tests.gatewayharness import GATEWAY_NAMESPACE, USER_NAMESPACE, client_env, execute
from tests.kernelmachine_cluster import LAUNCH_TIMEOUT, MAX_KERNELS, MAX_PER_USER, KernelWorld, Settled, kernel_world
from tests.kernelmachine_faults import ArmedFaults, FaultPlan, fault_plans
from tests.kernelmachine_model import USERS, Answer, Fate, Model, ModelKernel, answered, pick, pick_any
from tests.loop_tasks import describe, still_running_after

# The deep profile's examples run for minutes, and shrinking a counterexample of either profile can too.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800 if depth.PROFILE == "deep" else 600)]

MAX_REPLICAS = 3
MAX_DEATHS = 6
"""Pod deaths per kernel (below the replicas' restart limit, so a death is always restarted)."""
START_BOUND = LAUNCH_TIMEOUT + 10.0
"""A start ends ready or failed within its launch timeout, plus an outage and the record writes."""
BOUND = LAUNCH_TIMEOUT + 15.0
"""Every other request is answered within this (a restart stops the pod, then launches it again)."""
SLEEP = "import time; print('sleeping', flush=True); time.sleep(120)"


class KernelServiceMachine(RuleBasedStateMachine):
    """Replicas by name, and the model of every kernel asked for (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory(prefix="kernel-machine-")
        self.world_cm: Any = None
        self.world: KernelWorld | None = None
        self.faults: ArmedFaults | None = None
        self.model = Model()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 4 * BOUND))

    @property
    def w(self) -> KernelWorld:
        assert self.world is not None
        return self.world

    def has_replica(self) -> bool:
        return self.world is not None and bool(self.world.replicas)

    @initialize(shared=st.booleans())
    def set_up(self, shared: bool) -> None:
        """A cluster with one replica, ``EG_SHARED_NAMESPACE`` or not."""
        event(f"shared namespace: {shared}")
        self.world_cm = kernel_world(Path(self.tmp.name), shared=shared)
        self.world = self.run(self.world_cm.__aenter__())
        self.faults = ArmedFaults(self.world.store)

    def teardown(self) -> None:
        try:
            if self.world_cm is not None:
                self.run(self._shut_everything_down())
                self.run(self.world_cm.__aexit__(None, None, None))
                left = still_running_after(self.loop)
                assert not left, f"tasks left behind:\n{describe(left)}"
        finally:
            self.loop.close()
            self.tmp.cleanup()

    async def _shut_everything_down(self) -> None:
        """Every kernel shut down through a replica; then nothing of any kernel is left."""
        assert self.faults is not None
        self.faults.lift()
        if not self.w.replicas:
            await self.w.start_replica()
        settled = await self.w.settle(must_live=(), must_be_gone=())
        stack = next(iter(self.w.replicas.values()))
        for kernel_id in settled.records:
            answer = await answered(stack.service.shutdown(kernel_id), BOUND, f"shutdown {kernel_id}")
            assert answer.status in (200, 404), answer.error
        await self.w.settle(must_live=(), must_be_gone=settled.records)
        await self.w.foreign_objects_kept()

    # ------------------------------------------------------------------ choices

    def replica(self, data: st.DataObject) -> str:
        return pick(data, sorted(self.w.replicas), "replica")

    def any_id(self, data: st.DataObject) -> str:
        return pick(data, [*self.model.kernels, str(uuid.uuid4())], "kernel")

    def live_id(self, data: st.DataObject, *, dying: bool = False, mode: str = "") -> str | None:
        """A live kernel (``dying``: one that may die once more; ``mode``: of that mode), ``None`` if there is none."""
        kernels = [k.id for k in self.model.live()
                   if (not dying or k.deaths < MAX_DEATHS) and (not mode or k.mode == mode)]
        return pick_any(data, kernels, "live kernel")

    def modes(self) -> list[str]:
        return ["shared", "user"] if self.w.shared else ["own", "user"]

    # ------------------------------------------------------------------ replicas

    @precondition(lambda self: self.world is not None and len(self.world.replicas) < MAX_REPLICAS)
    @rule()
    def start_replica(self) -> None:
        """A new replica: it adopts every kernel in the cluster (the invariant checks it serves them)."""
        self.run(self.w.start_replica())

    @precondition(has_replica)
    @rule(data=st.data(), how=st.sampled_from(["SIGTERM", "SIGKILL"]))
    def end_replica(self, data: st.DataObject, how: str) -> None:
        """A replica stops (finishing what it does) or is killed (leaving everything as it is)."""
        event(f"replica {how}")
        name = self.replica(data)
        self.run(self.w.stop_replica(name) if how == "SIGTERM" else self.w.kill_replica(name))

    # ------------------------------------------------------------------ requests

    async def _start(self, name: str, mode: str, user: str, **extra: str) -> tuple[str, Answer]:
        kernel_id = extra.pop("KERNEL_ID", None) or str(uuid.uuid4())
        env = client_env(mode, KERNEL_ID=kernel_id, KERNEL_USERNAME=user, **extra)
        self.model.kernels[kernel_id] = ModelKernel(kernel_id, mode, user, Fate.UNSURE)
        service = self.w.replicas[name].service
        answer = await answered(service.start_kernel(name=None, env=env, username_fallback="gateway"), START_BOUND,
                                f"start on {name}")
        if answer.error is None:
            assert answer.value.id == kernel_id and answer.value.state == IDLE
        self.model.kernels[kernel_id].fate = Fate.LIVE if answer.error is None else Fate.FAILED
        return kernel_id, answer

    @precondition(has_replica)
    @rule(data=st.data(), user=st.sampled_from(USERS))
    def start(self, data: st.DataObject, user: str) -> None:
        mode = pick(data, self.modes(), "mode")
        event(f"start ({mode})")
        expected = self.model.start_outcomes(user)
        _, answer = self.run(self._start(self.replica(data), mode, user))
        assert answer.status in expected, f"start answered {answer.status}, expected {expected}: {answer.error}"

    @precondition(lambda self: self.world is not None and len(self.world.replicas) >= 2)
    @rule(data=st.data(), user=st.sampled_from(USERS))
    def start_on_every_replica(self, data: st.DataObject, user: str) -> None:
        """Starts for one user on every replica at once: the limits hold across replicas."""
        event("starts at once")
        mode = pick(data, self.modes(), "mode")
        live = self.model.live()
        room = min(MAX_KERNELS - len(live), MAX_PER_USER - sum(1 for k in live if k.username == user))
        names = sorted(self.w.replicas)

        async def all_at_once() -> list[tuple[str, Answer]]:
            return list(await asyncio.gather(*(self._start(name, mode, user) for name in names)))

        answers = [answer for _, answer in self.run(all_at_once())]
        started = sum(1 for a in answers if a.error is None)
        assert started <= max(0, room), f"{started} kernels started with room for {room}"
        assert all(a.status in (200, 403, 503) for a in answers), [a.error for a in answers]
        if not self.model.stale_admissions and any(a.status == 403 for a in answers):
            assert started == max(0, room), f"refused with room left: {[a.error for a in answers]}"

    @precondition(has_replica)
    @rule(data=st.data())
    def shutdown(self, data: st.DataObject) -> None:
        event("shutdown")
        kernel_id, name = self.any_id(data), self.replica(data)
        answer = self.run(answered(self.w.replicas[name].service.shutdown(kernel_id), BOUND, "shutdown"))
        if kernel_id in self.model.ids(Fate.LIVE):
            assert answer.error is None, answer.error
            self.model.kernels[kernel_id].fate = Fate.GONE
        else:
            assert answer.status in (200, 404), answer.error

    @precondition(has_replica)
    @rule(data=st.data())
    def restart(self, data: st.DataObject) -> None:
        event("restart")
        kernel_id, name = self.any_id(data), self.replica(data)
        service = self.w.replicas[name].service
        answer = self.run(answered(service.restart(kernel_id), BOUND, "restart"))
        if kernel_id in self.model.ids(Fate.LIVE):
            assert answer.error is None, answer.error
            kernel = answer.value
            assert kernel.id == kernel_id and kernel.state == IDLE
            assert self.run(execute(kernel, "6*7")) == ("ok", ["42"])
        else:
            assert answer.status == 404, answer.error

    @precondition(has_replica)
    @rule(data=st.data())
    def interrupt(self, data: st.DataObject) -> None:
        """Interrupt a kernel running a long sleep, through any replica: the execution ends with KeyboardInterrupt."""
        service = self.w.replicas[self.replica(data)].service
        kernel_id = self.live_id(data)
        if kernel_id is None:
            return
        event("interrupt")
        kernel = service.get(kernel_id)

        async def interrupted() -> str:
            started = asyncio.Event()
            running = asyncio.create_task(execute(kernel, SLEEP, started=started))
            await asyncio.wait_for(started.wait(), 30)
            answer = await answered(service.interrupt(kernel.id), BOUND, "interrupt")
            assert answer.error is None, answer.error
            status, _ = await asyncio.wait_for(running, 30)
            return status

        assert self.run(interrupted()) == "KeyboardInterrupt"

    @precondition(has_replica)
    @rule(data=st.data())
    def list_kernels(self, data: st.DataObject) -> None:
        """Any replica lists exactly the live kernels (its informers caught up at the last step's end)."""
        service = self.w.replicas[self.replica(data)].service
        assert sorted(k.id for k in service.list()) == sorted(self.model.ids(Fate.LIVE))

    # ------------------------------------------------------------------ behind the gateway's back

    async def _pod_of(self, kernel_id: str) -> dict[str, Any]:
        listing = await self.w.observer.list("pods", label_selector=f"kernel_id={kernel_id}")
        [pod] = listing["items"]
        return pod

    @precondition(has_replica)
    @rule(data=st.data(), how=st.sampled_from(["deleted", "killed"]), drop_watch=st.booleans())
    def pod_dies(self, data: st.DataObject, how: str, drop_watch: bool) -> None:
        """Someone deletes a kernel's pod, or it is OOM-killed (maybe the pod watches end too): the lease holder
        restarts it, exactly once."""
        kernel_id = self.live_id(data, dying=True)
        if kernel_id is None:
            return
        event(f"pod {how}")
        self.model.kernels[kernel_id].deaths += 1
        w = self.w

        async def dies() -> None:
            pod = await self._pod_of(kernel_id)
            before = w.ledger.of(kernel_id)
            namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            if how == "deleted":
                await w.observer.delete("pods", name, namespace=namespace)
            else:
                assert w.cluster.agent.oom_kill(namespace, name)
            if drop_watch:
                assert self.faults is not None
                self.faults.arm(FaultPlan("dropped watch", "watch", "pods"))
            dead = pod["metadata"]["uid"]
            settled = await w.settle(must_live=self.model.ids(Fate.LIVE), must_be_gone=(),
                                     past=lambda s: s.pods[kernel_id]["metadata"]["uid"] != dead)
            record = settled.records[kernel_id]
            assert record.pod is not None
            await w.ledger.seen(kernel_id, record.pod.uid, 30)
            new = w.ledger.of(kernel_id)[len(before):]
            assert new == [record.pod.uid], f"pods made for one death: {new}"
            holder = await w.lease_holder()
            assert record.actor == holder, f"restarted by {record.actor}, the lease holder is {holder}"

        self.run(dies())

    @precondition(has_replica)
    @rule(data=st.data(), race=st.sampled_from([
        "restart+shutdown", "restart+pod deleted", "shutdown+pod deleted", "shutdown+namespace deleted",
        "restart+namespace deleted", "shutdown+shutdown", "restart+restart"]))
    def racing(self, data: st.DataObject, race: str) -> None:
        """Two things happen to one kernel at once (two requests may go to two replicas): never a second pod."""
        first, second = race.split("+")
        # Only a namespace the gateway created for the kernel is deleted.
        kernel_id = self.live_id(data, mode="own" if second == "namespace deleted" else "")
        a, b = self.replica(data), self.replica(data)
        if kernel_id is None:
            return
        event(f"racing {race}")
        w = self.w

        async def both() -> list[Answer]:
            pod = await self._pod_of(kernel_id)
            if second == "pod deleted":
                other: Any = w.observer.delete("pods", pod["metadata"]["name"], namespace=pod["metadata"]["namespace"])
            elif second == "namespace deleted":
                other = w.observer.delete("namespaces", pod["metadata"]["namespace"])
            else:
                other = getattr(w.replicas[b].service, second)(kernel_id)
            ours = answered(getattr(w.replicas[a].service, first)(kernel_id), BOUND, first)
            results = await asyncio.gather(ours, answered(other, BOUND, second) if second in ("shutdown", "restart")
                                           else other)
            return [results[0]] + ([results[1]] if isinstance(results[1], Answer) else [])

        answers = self.run(both())
        kernel = self.model.kernels[kernel_id]
        if second == "namespace deleted":
            # The kernel's namespace is gone: a shutdown ends it, a restart may fail (then it is given up).
            kernel.fate = Fate.GONE if first == "shutdown" else Fate.UNSURE
            assert answers[0].status in ((200,) if first == "shutdown" else (200, 404, 500, 502, 503, 504)), \
                answers[0].error
            return
        assert all(a.status in (200, 404) for a in answers), [a.error for a in answers]
        assert answers[0].error is None or "shutdown" in race, answers[0].error
        if "shutdown" in race:
            kernel.fate = Fate.GONE
        else:
            assert all(a.error is None for a in answers), [a.error for a in answers]
            assert self.run(execute(w.replicas[a].service.get(kernel_id), "6*7")) == ("ok", ["42"])

    @precondition(lambda self: self.world is not None and len(self.world.replicas) >= 2)
    @rule(data=st.data(), user=st.sampled_from(USERS), late=st.booleans())
    def replica_killed_mid_launch(self, data: st.DataObject, user: str, late: bool) -> None:
        """A replica is killed while it launches a kernel (before or once its pod exists): the launch ends adopted
        or fully removed by the lease holder, never both, never neither."""
        event("replica killed mid-launch")
        mode = pick(data, self.modes(), "mode")
        name = self.replica(data)
        w = self.w
        stack = w.replicas[name]

        async def killed() -> None:
            kernel_id = str(uuid.uuid4())
            launch = asyncio.create_task(self._start(name, mode, user, KERNEL_ID=kernel_id, KERNEL_LAUNCH_TIMEOUT="2"))
            if late:  # once the kernel's pod exists (or the launch ended first)
                pod = asyncio.create_task(stack.pods.wait_for(
                    lambda p: p is not None and p["metadata"]["labels"].get("kernel_id") == kernel_id, timeout=30))
                await asyncio.wait([launch, pod], return_when=asyncio.FIRST_COMPLETED)
                pod.cancel()
                await asyncio.gather(pod, return_exceptions=True)
            else:
                await asyncio.sleep(0)  # the request has reached the replica
            await w.kill_replica(name)
            launch.cancel()  # the client's connection ended with the replica
            await asyncio.gather(launch, return_exceptions=True)
            self.model.kernels[kernel_id].fate = Fate.UNSURE

        self.run(killed())

    # ------------------------------------------------------------------ faults

    @precondition(has_replica)
    @rule(plan=fault_plans(), request=st.sampled_from(["start", "shutdown", "restart", "list", "pod dies"]),
          user=st.sampled_from(USERS), data=st.data())
    def request_under_fault(self, plan: FaultPlan, request: str, user: str, data: st.DataObject) -> None:
        """The API server is in trouble while a request is served: the request is answered (a value or a status)
        and, once the API recovers, the cluster settles with nothing orphaned."""
        event(f"fault {plan.kind}")
        event(f"{request} under fault")
        assert self.faults is not None
        self.model.faulted = True
        name = self.replica(data)
        service = self.w.replicas[name].service

        async def under_fault() -> None:
            assert self.faults is not None
            self.faults.arm(plan)
            try:
                if request == "start":
                    await self._start(name, pick(data, self.modes(), "mode"), user)
                    return
                if request == "list":
                    service.list()
                    return
                if request == "pod dies":  # a death while the API is in trouble is restarted all the same
                    kernel_id = self.live_id(data, dying=True)
                    if kernel_id is not None:
                        self.model.kernels[kernel_id].deaths += 1
                        pod = await self._pod_of(kernel_id)
                        await self.w.observer.delete("pods", pod["metadata"]["name"],
                                                     namespace=pod["metadata"]["namespace"])
                    return
                kernel_id = self.any_id(data)
                answer = await answered(getattr(service, request)(kernel_id), BOUND, f"{request} under {plan}")
                kernel = self.model.kernels.get(kernel_id)
                if kernel is not None and kernel.fate is Fate.LIVE:
                    if request == "shutdown" and answer.error is None:
                        kernel.fate = Fate.GONE
                    elif answer.error is not None:
                        kernel.fate = Fate.UNSURE
            finally:
                self.faults.lift()

        self.run(under_fault())

    # ------------------------------------------------------------------ invariants

    @invariant()
    def counted(self) -> None:
        depth.count_step(type(self).__name__)

    @invariant()
    def cluster_matches_the_model(self) -> None:
        if self.has_replica():
            self.run(self._check())

    async def _check(self) -> None:
        w, model = self.w, self.model
        settled = await w.settle(must_live=model.ids(Fate.LIVE), must_be_gone=model.ids(Fate.GONE, Fate.FAILED))
        model.resolve(settled)
        self._placements(settled)
        await w.foreign_objects_kept()
        await w.views_agree(settled)

    def _placements(self, settled: Settled) -> None:
        """Each live kernel's pod runs where its mode puts it."""
        for kernel_id, pod in settled.pods.items():
            namespace, mode = pod["metadata"]["namespace"], self.model.kernels[kernel_id].mode
            if mode == "own":
                assert namespace not in (GATEWAY_NAMESPACE, USER_NAMESPACE) and namespace == pod["metadata"]["name"]
            else:
                assert namespace == (USER_NAMESPACE if mode == "user" else GATEWAY_NAMESPACE), (mode, namespace)


# Real kernels take seconds to start: ``make test`` runs about 40 steps here (within a minute), ``make test-deep``
# about a thousand (within a quarter of an hour).
KernelServiceMachine.TestCase.settings = settings(
    max_examples=depth.examples(4, deep=30), stateful_step_count=depth.steps(15), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_kernel_service_machine = KernelServiceMachine.TestCase
