"""Fault injection for the simulated cluster: API errors, latency, dropped watches.

Tests and scenarios arm faults on ``store.faults``; every front end of the
store (``fakes.memory.MemoryCluster``, the simulated API server) calls
:meth:`Faults.take` at the start of each request and applies what it
returns: first the latency (awaited, never blocking), then the error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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

    def matches(self, verb: str, resource: str, namespace: str | None) -> bool:
        if self.verb not in ("*", verb):
            return False
        # "pods" matches requests on pods and on their subresources ("pods/log"); "pods/log" only those.
        if self.resource != "*" and self.resource != resource and self.resource != resource.split("/", 1)[0]:
            return False
        return self.namespace is None or self.namespace == namespace


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
    ) -> Fault:
        """Arm a fault for ``verb`` on ``resource`` (``"*"`` for any; ``"pods/log"`` for a subresource).

        The next ``times`` matching requests (all, when ``None``) wait ``latency``
        seconds and then fail with ``error`` (when given).
        """
        if times is not None and times <= 0:
            raise ValueError("times must be positive")
        fault = Fault(verb, resource, error, latency, times, namespace)
        self._faults.append(fault)
        return fault

    def take(self, verb: str, resource: str, namespace: str | None = None) -> tuple[float, ClusterError | None]:
        """Consume the faults matching a request; return the total latency and the first error.

        Called once per request by every front end of the store.  A fault
        whose ``times`` runs out is disarmed.
        """
        latency, error = 0.0, None
        for fault in list(self._faults):
            if not fault.matches(verb, resource, namespace):
                continue
            latency += fault.latency
            if error is None and fault.error is not None:
                error = fault.error
            if fault.times is not None:
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
        return latency, error

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
