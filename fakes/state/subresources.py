"""Subresources of the simulated cluster: ``pods/binding``, ``pods/log`` and ``serviceaccounts/token``.

:class:`Subresources` is a mixin of ``fakes.state.store.Store``; the front ends
(``fakes.memory.MemoryCluster``, and through it the API server) call these
methods after authorizing ``create pods/binding``, ``get pods/log`` and
``create serviceaccounts/token``.  Node agents register their log readers
here, as a real API server proxies ``pods/log`` to the kubelet of the pod's
node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fakes.auth.identity import TokenRegistry
from fakes.state.objects import clone
from gateway.cluster.interface import BadRequest, Cause, Conflict, Invalid, NotFound, ServerError
from gateway.cluster.resources import RESOURCES, ResourceType

LogReader = Callable[[str, str, str, "int | None"], str]
"""``reader(namespace, pod, container, tail_lines) -> text``: a node agent's log endpoint."""


class Subresources:
    """Pod binding, pod logs and service-account tokens (mixed into ``Store``)."""

    # Provided by Store:
    tokens: TokenRegistry
    _node_logs: dict[str, LogReader]
    _objects: dict[str, dict[tuple[str, str], dict[str, Any]]]

    def _stored(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def _put(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        raise NotImplementedError

    def _now(self) -> str:
        raise NotImplementedError

    def bind_pod(self, namespace: str, name: str, node_name: str) -> dict[str, Any]:
        """``pods/binding``: assign the pod to a node (pkg/registry/core/pod/storage/storage.go assignPod)."""
        rt = RESOURCES["pods"]
        old = self._stored(rt, namespace, name)
        spec = old.get("spec") or {}
        problem = ""
        if old["metadata"].get("deletionTimestamp"):
            problem = f"pod {name} is being deleted, cannot be assigned to a host"
        elif spec.get("nodeName"):
            problem = f'pod {name} is already assigned to node "{spec["nodeName"]}"'
        if problem:
            raise Conflict(f'Operation cannot be fulfilled on pods/binding "{name}": {problem}',
                           kind="pods/binding", name=name)
        new = clone(old)
        new["spec"]["nodeName"] = node_name
        status = new.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": self._now()})
        status["conditions"] = conditions
        return clone(self._put(rt, new, old))

    def register_node_logs(self, node_name: str, reader: LogReader) -> None:
        """A node agent offers its containers' logs; ``pods/log`` reads for its pods go to ``reader``."""
        self._node_logs[node_name] = reader

    def read_log(self, namespace: str, name: str, container: str | None = None,
                 tail_lines: int | None = None) -> str:
        """``pods/log``: the container's log from the node that runs the pod.

        A node counts as there when it has a Node object or a node agent registered its logs.
        """
        pod = self._stored(RESOURCES["pods"], namespace, name)
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        names = [c.get("name") for c in spec.get("containers") or []]
        init_names = [c.get("name") for c in spec.get("initContainers") or []]
        if container is None:
            if len(names) != 1:
                raise BadRequest(f"a container name must be specified for pod {name}, choose one of: "
                                 f"[{' '.join(str(n) for n in names)}]")
            container = names[0]
        elif container not in names and container not in init_names:
            raise BadRequest(f"container {container} is not valid for pod {name}")
        node = spec.get("nodeName")
        if not node:
            return ""  # strategy.go LogLocation: no host yet, an empty log
        if node not in self._node_logs and ("", node) not in self._objects["nodes"]:
            # LogLocation asks the node's connection info (pkg/kubelet/client NodeConnectionInfoGetter) before
            # anything reaches a kubelet; a v1.37.2 server answers a missing node so, under the pods resource.
            raise NotFound(f'pods "{node}" not found', kind="pods", name=node)
        statuses = (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])
        found: dict[str, Any] = next((s for s in statuses if s.get("name") == container), {})
        state = found.get("state") or {}
        if (not state or "waiting" in state) and "terminated" not in (found.get("lastState") or {}):
            # kubelet_pods.go validateContainerLogStatus: nothing ran yet, so there is no log to read.
            reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
            raise BadRequest(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        reader = self._node_logs.get(node)
        if reader is None:
            raise ServerError(f'Get "https://{node}:10250/containerLogs/{namespace}/{name}/{container}": '
                              "no node agent serves this node")
        return reader(namespace, name, container, tail_lines)

    def create_token(self, namespace: str, name: str, expiration_seconds: int = 3600) -> tuple[str, float]:
        """TokenRequest: a bound token for service account ``namespace/name``; returns it and its expiry."""
        rt = RESOURCES["serviceaccounts"]
        sa = self._stored(rt, namespace, name)
        if expiration_seconds < 600:
            # pkg/apis/authentication/validation: "may not specify a duration less than 10 minutes"
            raise Invalid(
                f'TokenRequest.authentication.k8s.io "{name}" is invalid: spec.expirationSeconds: Invalid value: '
                f"{expiration_seconds}: may not specify a duration less than 10 minutes",
                kind="TokenRequest", name=name, group="authentication.k8s.io",
                causes=[Cause("FieldValueInvalid", f"Invalid value: {expiration_seconds}: may not specify a duration "
                              "less than 10 minutes", "spec.expirationSeconds")],
            )
        return self.tokens.issue(namespace, name, sa["metadata"]["uid"], expiration_seconds)
