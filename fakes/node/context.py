"""What every pod worker of one node shares, and the node's timing rules.

The node agent (:class:`fakes.node.kubelet.NodeAgent`) builds one :class:`NodeContext` and
hands it to each :class:`fakes.node.podworker.PodWorker` it starts; tests pass a faster
:class:`RestartBackoff` through the node agent.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakes.node.images import ImageMap
from gateway.cluster.interface import Cluster, Obj

API_TIMEOUT = 10.0
"""Seconds any single call to the cluster may take before the worker gives up on it."""

OOM_ANNOTATION = "simulation.kernelgate.io/oom-kill"
"""A fault for the simulated node: setting (or changing) this pod annotation to any non-empty value
OOM-kills the pod's running containers, or the next one to start (``kubectl annotate pod P
simulation.kernelgate.io/oom-kill=1``)."""

LOST_CONTAINER_MESSAGE = "The container could not be located when the pod was terminated"


@dataclass(frozen=True)
class RestartBackoff:
    """Restart and image-pull back-off: the kubelet's are 10s doubling to 300s
    (pkg/kubelet/kubelet.go ``backOffPeriod``/``MaxContainerBackOff``).

    ``resync`` is how long a failed pull shows ``ErrImagePull`` before the next
    sync reports ``ImagePullBackOff``.
    """

    initial: float = 10.0
    maximum: float = 300.0
    resync: float = 1.0

    def delay(self, failures: int) -> float:
        """The wait before attempt ``failures + 1`` (``failures`` >= 1)."""
        return min(self.maximum, self.initial * 2 ** max(0, failures - 1))


EventSink = Callable[[Obj, "str | None", str, str, str], Coroutine[Any, Any, None]]
"""``record(pod, field_path, type, reason, message)``: posts a kubelet Event about the pod, or about
one of its containers when ``field_path`` (``spec.containers{name}``) is given."""


@dataclass
class NodeContext:
    """What every pod worker of one node shares (built by the node agent)."""

    cluster: Cluster
    node_name: str
    images: ImageMap
    work_dir: Path
    record: EventSink
    api_server_url: str | None = None
    host_ip: str = "127.0.0.1"
    backoff: RestartBackoff = field(default_factory=RestartBackoff)
    allocatable: dict[str, str] = field(default_factory=dict)
    api_ca_pem: bytes | None = None
    """The API server's CA; pods read the one published in their namespace's ``kube-root-ca.crt``."""
    isolate_pods: bool = False
    """Pods get their own hostname, ``/etc/hosts`` and projected volumes (``fakes.node.sandbox``)."""
