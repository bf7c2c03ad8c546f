"""The endpoint controllers: each Service's Endpoints and EndpointSlices, from its selector and the pods.

Two controllers, as kube-controller-manager runs them, over the same computation
(:mod:`fakes.controllers.serviceendpoints`):

- :class:`EndpointsController` (pkg/controller/endpoint) writes the ``Endpoints`` object named
  like the Service: ready pods in ``addresses``, the others in ``notReadyAddresses``, one
  subset per set of ports; it deletes it when the Service goes.
- :class:`EndpointSliceController` (pkg/controller/endpointslice) keeps one ``EndpointSlice``
  per set of ports (``generateName`` ``<service>-``, owned by the Service, so it goes with it),
  whose endpoints carry ``ready``/``serving``/``terminating`` conditions.  kube-proxy
  (``fakes.node.proxy``) reads these.

Services without a selector are left alone: their endpoints are written by hand.  Any pod
change re-syncs the Services of its namespace; a sync that finds nothing changed writes nothing.
"""

from __future__ import annotations

from typing import Any

from fakes.controllers.controller import Controller
from fakes.controllers.objects import controller_reference, key_of, meta, owned_by
from fakes.controllers.queue import Key
from fakes.controllers.serviceendpoints import Endpoint, group_by_ports
from gateway.cluster.interface import NotFound, Obj

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
HEADLESS_LABEL = "service.kubernetes.io/headless"


class _ServiceEndpoints(Controller):
    """What both endpoint controllers share: Services as keys, pod changes re-syncing their namespace."""

    def register(self) -> None:
        self.informers.on("services", lambda _type, svc: self.queue.add(key_of(svc)))
        self.informers.on("pods", self._pod_changed)

    def _pod_changed(self, _event_type: str, pod: Obj) -> None:
        namespace = meta(pod).get("namespace")
        for svc in self.informers.items("services", namespace):
            if (svc.get("spec") or {}).get("selector"):
                self.queue.add(key_of(svc))

    def _service_labels(self, service: Obj) -> dict[str, str]:
        labels = dict(meta(service).get("labels") or {})
        if (service.get("spec") or {}).get("clusterIP") == "None":
            labels[HEADLESS_LABEL] = ""
        return labels


class EndpointsController(_ServiceEndpoints):
    """Keeps the ``Endpoints`` of each Service with a selector."""

    name = "endpoint-controller"

    def register(self) -> None:
        super().register()
        self.informers.on("endpoints", lambda _type, ep: self.queue.add(key_of(ep)))

    async def sync(self, key: Key) -> None:
        namespace, name = key
        service = self.informers.get("services", namespace, name)
        existing = self.informers.get("endpoints", namespace, name)
        if service is None:
            if existing is not None:
                try:
                    await self.call(self.client.delete("endpoints", name, namespace=namespace))
                except NotFound:
                    pass
            return
        if not (service.get("spec") or {}).get("selector"):
            return
        labels = {**self._service_labels(service), SKIP_MIRROR_LABEL: "true"}
        subsets = _subsets(service, self.informers.items("pods", namespace))
        if existing is not None and (existing.get("subsets") or []) == subsets \
                and (meta(existing).get("labels") or {}) == labels:
            return
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "Endpoints",
                                "metadata": {"name": name, "namespace": namespace, "labels": labels}}
        if subsets:
            body["subsets"] = subsets
        if existing is None:
            await self.call(self.client.create("endpoints", body, namespace=namespace))
        else:
            body["metadata"] = {**meta(existing), "labels": labels}
            await self.call(self.client.replace("endpoints", name, body, namespace=namespace))


def _subsets(service: Obj, pods: list[Obj]) -> list[dict[str, Any]]:
    """``Endpoints.subsets``: one per set of ports; terminating pods are left out unless published not-ready."""
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    subsets = []
    for ports, endpoints in group_by_ports(service, pods).items():
        ready: list[dict[str, Any]] = []
        not_ready: list[dict[str, Any]] = []
        for endpoint in endpoints:
            if endpoint.terminating and not publish:
                continue
            (ready if endpoint.serving else not_ready).append(_address(endpoint))
        if not ready and not not_ready:
            continue
        subset: dict[str, Any] = {"ports": [_port(p) for p in ports]}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        subsets.append(subset)
    return subsets


def _address(endpoint: Endpoint) -> dict[str, Any]:
    address: dict[str, Any] = {"ip": endpoint.ip, "targetRef": endpoint.target_ref()}
    if endpoint.node:
        address["nodeName"] = endpoint.node
    return address


def _port(port: tuple[str, int, str]) -> dict[str, Any]:
    name, number, protocol = port
    out: dict[str, Any] = {"port": number, "protocol": protocol}
    if name:
        out["name"] = name
    return out


class EndpointSliceController(_ServiceEndpoints):
    """Keeps the ``EndpointSlices`` of each Service with a selector."""

    name = "endpointslice-controller"

    def register(self) -> None:
        super().register()
        self.informers.on("endpointslices", self._slice_changed)

    def _slice_changed(self, _event_type: str, endpoint_slice: Obj) -> None:
        service = (meta(endpoint_slice).get("labels") or {}).get(SERVICE_NAME_LABEL)
        if service:
            self.queue.add((meta(endpoint_slice).get("namespace", ""), service))

    async def sync(self, key: Key) -> None:
        namespace, name = key
        service = self.informers.get("services", namespace, name)
        if service is None or not (service.get("spec") or {}).get("selector"):
            return  # a deleted Service's slices go with it (owner references)
        mine = [s for s in self.informers.items("endpointslices", namespace)
                if owned_by(s, service) and (meta(s).get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY]
        labels = {**self._service_labels(service), SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY}
        pods = self.informers.items("pods", namespace)
        wanted = {ports: _slice_endpoints(endpoints) for ports, endpoints in group_by_ports(service, pods).items()}
        if not wanted:
            wanted = {(): []}  # a Service without endpoints still has one (empty) slice
        unmatched = list(mine)
        for ports, endpoints in wanted.items():
            current = next((s for s in unmatched if _slice_ports(s) == [_slice_port(p) for p in ports]), None)
            if current is not None:
                unmatched.remove(current)
                if (current.get("endpoints") or []) != endpoints or (meta(current).get("labels") or {}) != labels:
                    body = {**current, "metadata": {**meta(current), "labels": labels}, "endpoints": endpoints}
                    await self.call(self.client.replace("endpointslices", meta(current)["name"], body,
                                                        namespace=namespace))
                continue
            body = {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"generateName": f"{name}-", "namespace": namespace, "labels": labels,
                             "ownerReferences": [controller_reference(service, "v1", "Service")]},
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [_slice_port(p) for p in ports],
            }
            await self.call(self.client.create("endpointslices", body, namespace=namespace))
        for stale in unmatched:
            try:
                await self.call(self.client.delete("endpointslices", meta(stale)["name"], namespace=namespace))
            except NotFound:
                pass


def _slice_endpoints(endpoints: list[Endpoint]) -> list[dict[str, Any]]:
    out = []
    for endpoint in endpoints:
        entry: dict[str, Any] = {
            "addresses": [endpoint.ip],
            "conditions": {"ready": endpoint.ready, "serving": endpoint.serving, "terminating": endpoint.terminating},
            "targetRef": endpoint.target_ref(),
        }
        if endpoint.node:
            entry["nodeName"] = endpoint.node
        out.append(entry)
    return out


def _slice_port(port: tuple[str, int, str]) -> dict[str, Any]:
    name, number, protocol = port
    return {"name": name, "port": number, "protocol": protocol}


def _slice_ports(endpoint_slice: Obj) -> list[dict[str, Any]]:
    return list(endpoint_slice.get("ports") or [])
