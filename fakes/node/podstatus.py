"""Pod status as the kubelet reports it: container states, phase and conditions.

Pure functions and one small record type, used by the pod worker
(``fakes.node.podworker``) each time something about a pod's containers changes.
Field names, reasons and the phase rules follow the kubelet:
pkg/kubelet/kubelet_pods.go (``getPhase``, ``generateAPIPodStatus``),
pkg/kubelet/status/generate.go (the kubelet-owned conditions),
pkg/kubelet/container/sync_result.go and pkg/kubelet/images/types.go (the
waiting reasons).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from gateway.cluster.interface import Obj
from gateway.cluster.resources import TERMINAL_POD_PHASES

# Waiting reasons (pkg/kubelet/container/sync_result.go, pkg/kubelet/images/types.go,
# pkg/kubelet/kuberuntime/kuberuntime_container.go).
CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACKOFF = "ImagePullBackOff"
CRASH_LOOP_BACKOFF = "CrashLoopBackOff"
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"

# Terminated reasons as containerd reports them.
COMPLETED = "Completed"
ERROR = "Error"
OOM_KILLED = "OOMKilled"
START_ERROR = "StartError"
CONTAINER_STATUS_UNKNOWN = "ContainerStatusUnknown"

PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"

# Conditions the kubelet owns (pkg/kubelet/types/pod_status.go PodConditionByKubelet), in the order it writes them.
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


def now() -> str:
    """The current time in the API's RFC 3339 form, second precision (metav1.Time)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def container_id(pod_uid: str, name: str, attempt: int) -> str:
    """A containerd-style ID, stable for a pod's container and restart attempt."""
    digest = hashlib.sha256(f"{pod_uid}/{name}/{attempt}".encode()).hexdigest()
    return f"containerd://{digest}"


def exit_reason(exit_code: int, oom_killed: bool = False) -> str:
    """The ``terminated.reason`` containerd reports for an exit."""
    if oom_killed:
        return OOM_KILLED
    return COMPLETED if exit_code == 0 else ERROR


@dataclass
class ContainerRecord:
    """What the node knows about one container of a pod; owned and mutated by its runner."""

    name: str
    image: str
    image_id: str = ""
    container_id: str = ""
    init: bool = False
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": CONTAINER_CREATING}})
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    probe_ready: bool | None = None
    """The readiness probe's result while the container runs; ``None`` when it has no readiness probe."""

    @property
    def field_path(self) -> str:
        """How an Event's ``involvedObject.fieldPath`` names this container."""
        return f"spec.{'initContainers' if self.init else 'containers'}{{{self.name}}}"

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def terminated(self) -> dict[str, Any] | None:
        return self.state.get("terminated")

    def set_waiting(self, reason: str, message: str | None = None) -> None:
        waiting = {"reason": reason}
        if message:
            waiting["message"] = message
        self.state = {"waiting": waiting}

    def set_running(self, started_at: str, cid: str) -> None:
        self.container_id = cid
        self.state = {"running": {"startedAt": started_at}}

    def set_terminated(
        self, exit_code: int, reason: str, *, started_at: str | None, message: str | None = None,
        signal: int | None = None,
    ) -> None:
        term: dict[str, Any] = {"exitCode": exit_code, "reason": reason}
        if signal:
            term["signal"] = signal
        if message:
            term["message"] = message
        term["startedAt"] = started_at
        term["finishedAt"] = now()
        if self.container_id:
            term["containerID"] = self.container_id
        self.state = {"terminated": term}

    def begin_restart(self) -> None:
        """Move the terminated state to ``lastState`` before the next attempt (restartCount grows)."""
        if self.terminated is not None:
            self.last_state = {"terminated": dict(self.terminated)}
            self.restart_count += 1

    @property
    def ready(self) -> bool:
        """A running container is ready once its readiness probe passed (at once without one);
        an init container once it completed."""
        if self.init:
            return self.terminated is not None and self.terminated.get("exitCode") == 0
        return self.running and self.probe_ready is not False

    def to_status(self) -> dict[str, Any]:
        """The ``containerStatuses[]`` (or ``initContainerStatuses[]``) entry."""
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.running,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def get_phase(
    restart_policy: str,
    statuses: list[dict[str, Any]],
    expected: int,
    pod_is_terminal: bool,
    init_statuses: list[dict[str, Any]] | None = None,
) -> str:
    """The pod phase from its containers' statuses, after the kubelet's ``getPhase``
    (pkg/kubelet/kubelet_pods.go), for regular init containers (not sidecars).
    ``expected`` is the number of containers in the spec: one without a status
    counts as unknown."""
    pending_init = failed_init = 0
    for cs in init_statuses or []:
        state, last = cs.get("state") or {}, cs.get("lastState") or {}
        if "terminated" in state:
            failed_init += state["terminated"].get("exitCode") != 0
        elif "waiting" in state and "terminated" in last:
            failed_init += last["terminated"].get("exitCode") != 0
        else:
            pending_init += 1
    if failed_init and restart_policy == "Never":
        return FAILED
    any_started = any(
        "running" in (cs.get("state") or {}) or "terminated" in (cs.get("state") or {})
        or "terminated" in (cs.get("lastState") or {})
        for cs in statuses
    )
    if pending_init and not any_started:
        return PENDING
    running = waiting = stopped = succeeded = 0
    unknown = max(0, expected - len(statuses))
    for cs in statuses:
        state, last = cs.get("state") or {}, cs.get("lastState") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"].get("exitCode") == 0
        elif "waiting" in state:
            if "terminated" in last:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1
    if waiting > 0:
        return PENDING
    if running > 0 and unknown == 0:
        return RUNNING
    if running == 0 and stopped > 0 and unknown == 0:
        if pod_is_terminal:
            return SUCCEEDED if stopped == succeeded else FAILED
        if restart_policy == "Always":
            return RUNNING
        if stopped == succeeded:
            return SUCCEEDED
        return FAILED if restart_policy == "Never" else RUNNING
    return PENDING


def _condition(ctype: str, ok: bool, reason: str | None = None, message: str | None = None) -> dict[str, Any]:
    cond: dict[str, Any] = {"type": ctype, "status": "True" if ok else "False", "lastProbeTime": None}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def kubelet_conditions(
    statuses: list[dict[str, Any]], phase: str, sandbox_ready: bool, init_statuses: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The conditions the kubelet owns (pkg/kubelet/status/generate.go), without transition times."""
    unready = [cs["name"] for cs in statuses if not cs.get("ready")]
    incomplete = [cs["name"] for cs in init_statuses or [] if not cs.get("ready")]
    initialized: tuple[bool, str | None, str | None] = (True, None, None)
    if phase == SUCCEEDED and init_statuses:
        initialized = (True, "PodCompleted", None)
    elif incomplete:
        initialized = (False, "ContainersNotInitialized", f"containers with incomplete status: [{' '.join(incomplete)}]")
    ready: tuple[bool, str | None, str | None]
    if phase == SUCCEEDED:
        ready = (False, "PodCompleted", None)
    elif unready:
        ready = (False, "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")
    else:
        ready = (True, None, None)
    return [
        _condition("PodReadyToStartContainers", sandbox_ready),
        _condition("Initialized", *initialized),
        _condition("Ready", *ready),
        _condition("ContainersReady", *ready),
        _condition("PodScheduled", True),
    ]


def merge_conditions(previous: list[dict[str, Any]], fresh: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep conditions the kubelet does not own; stamp ``lastTransitionTime`` only when a status flips."""
    before = {c.get("type"): c for c in previous or []}
    merged = [c for c in previous or [] if c.get("type") not in KUBELET_CONDITIONS]
    stamp = now()
    for cond in fresh:
        old = before.get(cond["type"])
        if old is not None and old.get("status") == cond["status"] and old.get("lastTransitionTime"):
            cond["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            cond["lastTransitionTime"] = stamp
        merged.append(cond)
    return merged


def pod_status(
    pod: Obj,
    records: list[ContainerRecord],
    *,
    pod_ip: str | None,
    host_ip: str,
    start_time: str,
    pod_is_terminal: bool = False,
) -> dict[str, Any]:
    """The full ``status`` the kubelet writes for ``pod`` (the kubelet's generateAPIPodStatus, simplified).

    A phase already terminal in ``pod.status`` never changes back.
    """
    spec, previous = pod.get("spec", {}), pod.get("status") or {}
    statuses = [r.to_status() for r in records if not r.init]
    init_statuses = [r.to_status() for r in records if r.init]
    phase = get_phase(spec.get("restartPolicy", "Always"), statuses, len(spec.get("containers") or []),
                      pod_is_terminal, init_statuses)
    if previous.get("phase") in TERMINAL_POD_PHASES:
        phase = previous["phase"]
    sandbox_ready = pod_ip is not None and phase not in TERMINAL_POD_PHASES
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": merge_conditions(
            previous.get("conditions") or [], kubelet_conditions(statuses, phase, sandbox_ready, init_statuses)
        ),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": statuses,
    }
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if previous.get("qosClass"):
        status["qosClass"] = previous["qosClass"]
    return status
