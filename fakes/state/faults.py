"""Fault injection for the simulated cluster: API errors, latency, dropped watches.

Tests and scenarios arm faults on ``store.faults``; every front end of the
store (``fakes.memory.MemoryCluster``, and through it the simulated API server)
calls :meth:`Faults.take` at the start of each request and applies the
:class:`Effect` it returns: first the latency and any hold (awaited, never
blocking), then the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.cluster.interface import ClusterError


@dataclass
class Fault:
    """One armed fault.  ``times=None`` fires on every matching request."""

    verb: str
    resource: str
    error: ClusterError | None = None
    latency: float = 0.0
    times: int | None = None
    namespace: str | None = None
    hold: asyncio.Event | None = None
    """Held requests wait until the test sets this event: an answer delayed for exactly as long as a test needs."""

    def matches(self, verb: str, resource: str, namespace: str | None) -> bool:
        if self.verb not in ("*", verb):
            return False
        # "pods" matches requests on pods and on their subresources ("pods/log"); "pods/log" only those.
        if self.resource != "*" and self.resource != resource and self.resource != resource.split("/", 1)[0]:
            return False
        return self.namespace is None or self.namespace == namespace


@dataclass
class Effect:
    """What the armed faults do to one request: wait ``latency`` seconds and for every hold, then fail with ``error``."""

    latency: float = 0.0
    holds: list[asyncio.Event] = field(default_factory=list)
    error: ClusterError | None = None

    async def apply(self) -> None:
        """Called by the front end before it serves the request; raises the injected error, if any."""
        if self.latency:
            await asyncio.sleep(self.latency)
        for hold in self.holds:
            await hold.wait()
        if self.error is not None:
            raise self.error


class Faults:
    """The faults armed on one store.

    ``drop_watch`` is the store's hook that ends open watches; the store
    passes it when it creates this object.
    """

    def __init__(self, drop_watch: Callable[[str | None], int]) -> None:
        self._faults: list[Fault] = []
        self._drop_watch = drop_watch

    def inject(
        self,
        verb: str,
        resource: str,
        *,
        error: ClusterError | None = None,
        latency: float = 0.0,
        times: int | None = None,
        namespace: str | None = None,
        hold: asyncio.Event | None = None,
    ) -> Fault:
        """Arm a fault for ``verb`` on ``resource`` (``"*"`` for any; ``"pods/log"`` for a subresource).

        The next ``times`` matching requests (all, when ``None``) wait ``latency``
        seconds and until ``hold`` is set (when given), and then fail with ``error`` (when given).
        """
        if times is not None and times <= 0:
            raise ValueError("times must be positive")
        fault = Fault(verb, resource, error, latency, times, namespace, hold)
        self._faults.append(fault)
        return fault

    def take(self, verb: str, resource: str, namespace: str | None = None) -> Effect:
        """Consume the faults matching a request; return their effect: the total latency, the holds, the first error.

        Called once per request by every front end of the store.  A fault
        whose ``times`` runs out is disarmed.
        """
        effect = Effect()
        for fault in list(self._faults):
            if not fault.matches(verb, resource, namespace):
                continue
            effect.latency += fault.latency
            if fault.hold is not None:
                effect.holds.append(fault.hold)
            if effect.error is None and fault.error is not None:
                effect.error = fault.error
            if fault.times is not None:
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
        return effect

    def drop_watches(self, resource: str | None = None) -> int:
        """End every open watch (on ``resource`` only, when given); clients see their stream end.

        Returns how many watches were ended.
        """
        return self._drop_watch(resource)

    def clear(self) -> None:
        """Disarm every fault."""
        self._faults.clear()

    def __len__(self) -> int:
        return len(self._faults)
