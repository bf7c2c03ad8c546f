"""Reading a launching kernel pod's state: ready to call back, failed for good, or still on its way.

The provisioner follows one pod through the versions its informer delivers
with a :class:`PodProgress`, which says when the pod has an IP, when it has
failed in a way no amount of waiting repairs (so the launch fails at once,
EG issue #1357), and, when the launch times out, what it was still waiting for.

Reasons are the kubelet's and the scheduler's (pkg/kubelet/images/types.go:
``ErrImagePull``, ``ImagePullBackOff``, ``InvalidImageName``,
``ErrImageNeverPull``; pkg/scheduler: ``PodScheduled=False`` with reason
``Unschedulable``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.cluster.resources import TERMINAL_POD_PHASES

from .errors import ImagePullFailed, LaunchError, PodFailed, Unschedulable

Obj = dict[str, Any]

PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
_MAX_DETAIL = 300


def phase(pod: Obj | None) -> str | None:
    """``status.phase`` of ``pod`` (``None`` for no pod)."""
    if pod is None:
        return None
    return str((pod.get("status") or {}).get("phase") or "Pending")


def kernel_container_status(pod: Obj) -> dict[str, Any]:
    """The status of the kernel's container: the one named like the pod, else the first reported."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    name = (pod.get("metadata") or {}).get("name")
    for status in statuses:
        if status.get("name") == name:
            return status
    return statuses[0] if statuses else {}


def _condition(pod: Obj, ctype: str) -> dict[str, Any]:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == ctype:
            return condition
    return {}


def _short(text: object) -> str:
    text = str(text or "").strip()
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


@dataclass
class PodProgress:
    """One launched pod (``namespace/name`` with ``uid``) as the informer shows it, version after version.

    :meth:`observe` is called with every version (``None`` while the cache
    has no pod of that name); the other methods read what was observed.
    """

    namespace: str
    name: str
    uid: str
    seen: bool = False
    gone: bool = False
    last: Obj | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return f"pod {self.name} in namespace {self.namespace}"

    def observe(self, pod: Obj | None) -> None:
        """Take the cache's current version of the pod's name into account."""
        if pod is not None and (pod.get("metadata") or {}).get("uid") == self.uid:
            self.seen, self.last = True, pod
        elif self.seen:
            self.gone = True  # deleted, or replaced by another pod of the same name

    def pod_ip(self) -> str | None:
        """The pod's IP once the kubelet reported it."""
        if self.last is None or self.gone:
            return None
        return (self.last.get("status") or {}).get("podIP") or None

    def failure(self) -> LaunchError | None:
        """The error to fail the launch with, when the pod cannot become ready any more."""
        if self.gone:
            return PodFailed(f"{self.where} was deleted before the kernel started")
        pod = self.last
        if pod is None:
            return None
        if phase(pod) in TERMINAL_POD_PHASES:
            return self._ended(pod)
        state = kernel_container_status(pod).get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in PULL_FAILURES:
            image = kernel_container_status(pod).get("image") or _first_image(pod)
            return ImagePullFailed(
                f"{self.where} cannot pull image {image}: {waiting['reason']}: {_short(waiting.get('message'))}"
            )
        if "terminated" in state:  # the kernel container ended while a sidecar keeps the pod running
            return self._ended(pod)
        scheduled = _condition(pod, "PodScheduled")
        if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            return Unschedulable(f"{self.where} cannot be scheduled: {_short(scheduled.get('message'))}")
        return None

    def _ended(self, pod: Obj) -> PodFailed:
        terminated = (kernel_container_status(pod).get("state") or {}).get("terminated") or {}
        code = terminated.get("exitCode")
        reason = str(terminated.get("reason") or (pod.get("status") or {}).get("reason") or "")
        if code is None:
            what = f"{self.where} ended ({phase(pod)}{': ' + reason if reason else ''})"
        else:
            what = f"{self.where} failed: its container exited with code {code}" + (f" ({reason})" if reason else "")
        message = terminated.get("message") or (pod.get("status") or {}).get("message")
        if message:
            what += f": {_short(message)}"
        return PodFailed(f"{what}, before the kernel sent its connection info", container_reason=reason, exit_code=code)

    def describe(self) -> str:
        """What the pod was doing last, for a timeout message: ``still Pending (ContainerCreating)``."""
        pod = self.last
        if pod is None:
            return "not seen by the gateway yet"
        current = phase(pod)
        status = kernel_container_status(pod)
        state = status.get("state") or {}
        if "waiting" in state:
            detail = state["waiting"].get("reason") or "Waiting"
        elif "running" in state:
            detail = "container running"
        elif not (pod.get("spec") or {}).get("nodeName"):
            detail = "not scheduled"
        else:
            detail = "ContainerCreating"
        return f"still {current} ({detail})"


def _first_image(pod: Obj) -> str:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("image") or "")
