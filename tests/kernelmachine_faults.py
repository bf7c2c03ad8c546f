"""The API server's troubles the kernel-service state machine draws, armed on the simulated store's faults.

A :class:`FaultPlan` is one trouble: an error answer (5xx, 429, or a 409 conflict on a write) to
the next few requests of one verb on one resource the gateway calls, latency on them, an outage
of the whole API for some seconds (every request held until an event is set), its watches ended,
or ended and answered 410 Gone when resumed (so the informers relist).  :class:`ArmedFaults` arms
plans on the store (counting each with :func:`tests.depth.count_fault`) and lifts them all at once
when the machine's request under them has been answered: the API recovers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import strategies as st

from fakes.state.store import Store
from gateway.cluster.interface import (
    ClusterError,
    Conflict,
    Gone,
    ServerError,
    ServiceUnavailable,
    Timeout,
    TooManyRequests,
)
from tests import depth

VERBS = ("create", "get", "list", "update", "patch", "delete")
RESOURCES = ("pods", "namespaces", "rolebindings", "secrets", "configmaps", "leases", "serviceaccounts")
"""What the gateway calls: kernel pods and their placement, the records (Secrets), the admissions
(a ConfigMap), the duties' Lease, the service account a launch awaits."""
WATCHED = ("pods", "secrets", None)
"""Watches the gateway holds: its pod and record informers (``None``: every watch)."""
ERRORS: dict[int, type[ClusterError]] = {
    500: ServerError, 503: ServiceUnavailable, 504: Timeout, 429: TooManyRequests, 409: Conflict,
}


@dataclass(frozen=True)
class FaultPlan:
    """One trouble of the API server (see the module docstring); ``kind`` names it in the run's totals."""

    kind: str
    verb: str = "*"
    resource: str = "*"
    status: int = 0
    times: int = 1
    seconds: float = 0.0
    """The latency of each request, or the length of the outage."""

    def __str__(self) -> str:
        what = {"latency": f"{self.seconds:.1f}s late", "outage": f"for {self.seconds:.1f}s"}.get(self.kind, "")
        return f"{self.kind} {self.verb} {self.resource} {self.status or ''} x{self.times} {what}".strip()


def _errors() -> st.SearchStrategy[FaultPlan]:
    statuses = st.sampled_from([500, 503, 504, 429])
    answered = st.builds(lambda status, verb, resource, times: FaultPlan(
        "429" if status == 429 else "5xx", verb, resource, status, times),
        statuses, st.sampled_from(VERBS), st.sampled_from(RESOURCES), st.integers(1, 6))
    conflicts = st.builds(lambda verb, resource, times: FaultPlan("409", verb, resource, 409, times),
                          st.sampled_from(["update", "patch"]), st.sampled_from(RESOURCES), st.integers(1, 3))
    return answered | conflicts


def fault_plans() -> st.SearchStrategy[FaultPlan]:
    """Every trouble the machine may draw."""
    late = st.builds(lambda verb, resource, seconds, times: FaultPlan("latency", verb, resource, 0, times, seconds),
                     st.sampled_from(VERBS), st.sampled_from(RESOURCES), st.floats(0.1, 1.5), st.integers(1, 5))
    outage = st.builds(lambda seconds: FaultPlan("outage", seconds=seconds), st.floats(0.5, 4.0))
    watches = st.builds(lambda resource, gone: FaultPlan("410 gone" if gone else "dropped watch", "watch",
                                                         resource or "*"),
                        st.sampled_from(WATCHED), st.booleans())
    return _errors() | late | outage | watches


class ArmedFaults:
    """The faults armed on one store until :meth:`lift`."""

    def __init__(self, store: Store) -> None:
        self._faults = store.faults
        self._holds: list[asyncio.Event] = []
        self._timers: list[asyncio.TimerHandle] = []
        self.armed: list[FaultPlan] = []

    def arm(self, plan: FaultPlan) -> None:
        """Arm ``plan`` now (an outage ends by itself after its seconds; watches end at once)."""
        depth.count_fault(plan.kind)
        self.armed.append(plan)
        if plan.kind == "outage":
            hold = asyncio.Event()
            self._holds.append(hold)
            self._timers.append(asyncio.get_running_loop().call_later(plan.seconds, hold.set))
            self._faults.inject("*", "*", hold=hold)
        elif plan.kind == "latency":
            self._faults.inject(plan.verb, plan.resource, latency=plan.seconds, times=plan.times)
        elif plan.kind in ("dropped watch", "410 gone"):
            resource = None if plan.resource == "*" else plan.resource
            if plan.kind == "410 gone":
                self._faults.inject("watch", plan.resource, error=Gone("too old resource version"), times=1)
            self._faults.drop_watches(resource)
        else:
            error = ERRORS[plan.status](f"injected {plan.status} on {plan.verb} {plan.resource}")
            self._faults.inject(plan.verb, plan.resource, error=error, times=plan.times)

    def lift(self) -> None:
        """The API recovers: every fault disarmed, every held request let through."""
        self._faults.clear()
        for timer in self._timers:
            timer.cancel()
        for hold in self._holds:
            hold.set()
        self._holds.clear()
        self._timers.clear()
        self.armed.clear()
