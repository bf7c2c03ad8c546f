"""Node ports of Services, allocated and released as a real API server does.

A Service of type ``NodePort`` or ``LoadBalancer`` gets, for each of its ports
without one, a ``nodePort`` from ``30000-32767`` (the default
``--service-node-port-range``), unique across the cluster; a requested one is
kept when it is free and in range, else the create or update is a 422 with the
allocator's own words.  Deleting the service (or changing it to a type without
node ports) frees its ports again.

Follows ``pkg/registry/core/service/portallocator/allocator.go`` (the error
texts ``provided port is already allocated`` and ``provided port is not in the
valid range. The range of valid ports is 30000-32767``, a random free port for
``AllocateNext``) and ``pkg/registry/core/service/storage/alloc.go``
(``initNodePorts``: service ports sharing a ``port`` number share one node
port; ``updateNodePorts`` and ``releaseNodePorts``) and ``storage.go``
(``patchAllocatedValues``: an update that leaves ``nodePort`` out keeps the
one allocated before for the port of that name).  ``validation.go`` refuses a
``nodePort`` on a ``ClusterIP`` service.  Health-check node ports
(``externalTrafficPolicy: Local``) are not simulated.

Called by :class:`fakes.state.store.Store` when it creates, updates and removes services.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from fakes.state import validation
from gateway.cluster.interface import ServerError
from gateway.cluster.resources import RESOURCES

NODE_PORT_RANGE = range(30000, 32768)
"""The API server's default ``--service-node-port-range``, 30000-32767."""
_WITH_NODE_PORTS = ("NodePort", "LoadBalancer")


def _range_text(ports: range) -> str:
    return f"{ports.start}-{ports.stop - 1}"


def needs_node_ports(service: Mapping[str, Any] | None) -> bool:
    """Whether ``service``'s type exposes it on every node's ports."""
    return service is not None and (service.get("spec") or {}).get("type") in _WITH_NODE_PORTS


def node_ports_of(service: Mapping[str, Any] | None) -> set[int]:
    """The node ports ``service`` holds (none unless its type has node ports)."""
    if not needs_node_ports(service):
        return set()
    assert service is not None
    return {p["nodePort"] for p in (service.get("spec") or {}).get("ports") or [] if p.get("nodePort")}


class NodePorts:
    """The cluster's node port allocations: one per store."""

    def __init__(self, ports: range = NODE_PORT_RANGE, rng: random.Random | None = None) -> None:
        self._range = ports
        self._used: set[int] = set()
        self._random = rng or random.Random()

    def allocated(self) -> frozenset[int]:
        """The node ports in use, for tests and invariants."""
        return frozenset(self._used)

    def assign(self, service: dict[str, Any], old: Mapping[str, Any] | None = None) -> None:
        """Fill in and reserve ``service``'s node ports in place; ``old``: the stored service on an update.

        Called by the store after validation, before it stores ``service``.
        Raises the 422 a real server answers (nothing is reserved then); on
        success, node ports ``old`` held that ``service`` no longer holds are freed.
        """
        spec = service.get("spec") or {}
        ports = spec.get("ports") or []
        name = (service.get("metadata") or {}).get("name", "")
        if spec.get("type", "ClusterIP") == "ClusterIP":
            errors = [validation.FieldError("FieldValueForbidden", f"spec.ports[{i}].nodePort",
                                            detail="may not be used when `type` is 'ClusterIP'")
                      for i, port in enumerate(ports) if port.get("nodePort")]
            if errors:
                raise validation.invalid(RESOURCES["services"], name, errors)
        held = node_ports_of(old)
        if not needs_node_ports(service):
            self._used -= held
            return
        if needs_node_ports(old):
            _keep_allocated(old or {}, ports)
        allocate_missing = spec.get("type") == "NodePort" or spec.get("allocateLoadBalancerNodePorts", True)
        taken: set[int] = set()
        try:
            self._fill(name, ports, held, taken, allocate_missing=bool(allocate_missing))
        except BaseException:
            self._used -= taken
            raise
        self._used -= held - node_ports_of(service)

    def release(self, service: Mapping[str, Any]) -> None:
        """Free the node ports of ``service``; called by the store when it removes a service."""
        self._used -= node_ports_of(service)

    def _fill(self, name: str, ports: list[dict[str, Any]], held: set[int], taken: set[int], *,
              allocate_missing: bool) -> None:
        by_service_port: dict[Any, int] = {}
        for i, port in enumerate(ports):
            wanted = port.get("nodePort") or 0
            if not wanted and not allocate_missing:
                continue  # a LoadBalancer with allocateLoadBalancerNodePorts: false
            if not wanted:
                wanted = by_service_port.get(port.get("port")) or _requested_later(ports, i)
            if wanted:
                if wanted not in held and wanted not in taken:
                    self._take(name, i, wanted)
                    taken.add(wanted)
            else:
                wanted = self._next()
                taken.add(wanted)
            port["nodePort"] = wanted
            by_service_port.setdefault(port.get("port"), wanted)

    def _take(self, name: str, index: int, port: int) -> None:
        if port not in self._range:
            why = f"provided port is not in the valid range. The range of valid ports is {_range_text(self._range)}"
        elif port in self._used:
            why = "provided port is already allocated"
        else:
            self._used.add(port)
            return
        raise validation.invalid(RESOURCES["services"], name, [
            validation.FieldError("FieldValueInvalid", f"spec.ports[{index}].nodePort", port, why)])

    def _next(self) -> int:
        if len(self._used) >= len(self._range):
            raise ServerError("Internal error occurred: failed to allocate a nodePort: range is full")
        # A random start, then the next free port: the bitmap allocator's random scan.
        start = self._random.randrange(len(self._range))
        for offset in range(len(self._range)):
            port = self._range[(start + offset) % len(self._range)]
            if port not in self._used:
                self._used.add(port)
                return port
        raise AssertionError("unreachable: a free port was counted")


def _requested_later(ports: list[dict[str, Any]], index: int) -> int:
    """A node port requested by a later entry for the same service port (``findRequestedNodePort``)."""
    number = ports[index].get("port")
    for port in ports[index + 1:]:
        if port.get("port") == number and port.get("nodePort"):
            return int(port["nodePort"])
    return 0


def _keep_allocated(old: Mapping[str, Any], ports: list[dict[str, Any]]) -> None:
    """An update that leaves a port's ``nodePort`` out keeps the one its name had (``patchAllocatedValues``)."""
    old_ports = (old.get("spec") or {}).get("ports") or []
    by_name = {p.get("name", ""): p.get("nodePort") or 0 for p in old_ports}
    still_named = {p.get("nodePort") for p in old_ports if p.get("nodePort")} & {
        p.get("nodePort") for p in ports if p.get("nodePort")}
    for port in ports:
        if not port.get("nodePort"):
            previous = by_name.get(port.get("name", ""), 0)
            if previous and previous not in still_named:
                port["nodePort"] = previous
