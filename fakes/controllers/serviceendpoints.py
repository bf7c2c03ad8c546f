"""The endpoints of a Service: the pods it selects, their addresses and the ports its ports target.

Pure functions after pkg/controller/endpoint and pkg/controller/endpointslice (``podToEndpoint``,
``ShouldPodBeInEndpoints``, ``podutil.FindPort``), used by both endpoint controllers
(:mod:`fakes.controllers.endpoints`).  A pod counts once it has an IP and until it is terminal;
a ``targetPort`` given by name is looked up among the pod's container ports, so pods of one
Service may serve it on different numbers (they then land in different subsets or slices).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fakes.controllers.objects import TERMINAL_PHASES, map_selects, meta, pod_ready
from gateway.cluster.interface import Obj

PortKey = tuple[tuple[str, int, str], ...]
"""A pod's resolved ports for one Service: ``(name, number, protocol)`` per Service port."""


@dataclass(frozen=True)
class Endpoint:
    """One pod behind a Service."""

    ip: str
    node: str
    pod: Obj
    ready: bool
    serving: bool
    terminating: bool

    def target_ref(self) -> dict[str, Any]:
        return {"kind": "Pod", "namespace": meta(self.pod).get("namespace", ""), "name": meta(self.pod)["name"],
                "uid": meta(self.pod).get("uid", "")}


def selected_pods(service: Obj, pods: list[Obj]) -> list[Obj]:
    """The pods of the Service's namespace its selector selects (none without a selector)."""
    selector = (service.get("spec") or {}).get("selector")
    namespace = meta(service).get("namespace")
    return [pod for pod in pods
            if meta(pod).get("namespace") == namespace and map_selects(selector, meta(pod).get("labels"))]


def endpoint_of(service: Obj, pod: Obj) -> Endpoint | None:
    """The pod as an endpoint of ``service``, or ``None`` when it has no IP or is terminal."""
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if not ip or status.get("phase") in TERMINAL_PHASES:
        return None
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    terminating = bool(meta(pod).get("deletionTimestamp"))
    serving = pod_ready(pod) or publish
    return Endpoint(ip=ip, node=(pod.get("spec") or {}).get("nodeName", ""), pod=pod,
                    ready=serving and not terminating, serving=serving, terminating=terminating)


def find_port(pod: Obj, target: Any, protocol: str) -> int | None:
    """The container port ``target`` names (``FindPort``): a number as is, a name looked up in the containers."""
    if isinstance(target, int):
        return target
    text = str(target)
    if text.isdigit():
        return int(text)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == text and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def pod_ports(service: Obj, pod: Obj) -> PortKey:
    """The Service's ports as ``pod`` serves them; ports the pod does not name are left out."""
    resolved = []
    for port in (service.get("spec") or {}).get("ports") or []:
        protocol = port.get("protocol") or "TCP"
        target = port.get("targetPort", port.get("port"))
        number = find_port(pod, target, protocol)
        if number is not None:
            resolved.append((port.get("name") or "", number, protocol))
    return tuple(resolved)


def group_by_ports(service: Obj, pods: list[Obj]) -> dict[PortKey, list[Endpoint]]:
    """The Service's endpoints grouped by the ports they serve on, addresses sorted."""
    groups: dict[PortKey, list[Endpoint]] = {}
    for pod in selected_pods(service, pods):
        endpoint = endpoint_of(service, pod)
        ports = pod_ports(service, pod)
        if endpoint is not None and ports:
            groups.setdefault(ports, []).append(endpoint)
    for endpoints in groups.values():
        endpoints.sort(key=lambda e: (e.ip, meta(e.pod)["name"]))
    return dict(sorted(groups.items()))
