"""A kernel's record made from what the kernel service knows, and what the service rebuilds from a record.

Pure functions over :mod:`gateway.objects.record` and the provisioner's values: the service
writes :func:`launching` before a first launch, :func:`claimed` to take a phase (restarting,
terminating), :func:`running` once a (re)launch answered; any replica rebuilds a kernel's
request, placement and running pod from its record with :func:`request_of` and :func:`running_of`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from gateway.objects.endpoints import KernelEndpoints
from gateway.objects.record import (
    KernelRecord,
    Phase,
    RecordPlacement,
    RecordPod,
    RestartKind,
)
from gateway.provisioner.connection import ConnectionInfo
from gateway.provisioner.model import LaunchRequest, RunningKernel
from gateway.provisioner.placement import placement_of
from gateway.provisioner.spec import KernelSpecInfo


def launch_deadline(now: datetime, timeout: float, grace: float) -> datetime:
    """Until when a launch of ``timeout`` begun ``now`` may run: its timeout, and ``grace`` to answer and record it.

    The kernel must answer by :func:`answer_by` of it, so that the launch is recorded before
    the deadline, past which the lease holder undoes (or carries out again) what is left.
    """
    return now + timedelta(seconds=timeout + grace)


def answer_by(record: KernelRecord | None, grace: float) -> datetime | None:
    """When a launched kernel must have answered, to be recorded running before ``record``'s deadline."""
    return record.launch_deadline - timedelta(seconds=grace / 2) if record is not None else None


def launching(request: LaunchRequest, placement: RecordPlacement, *, actor: str, now: datetime,
              grace: float) -> KernelRecord:
    """The record written before anything of a new kernel is created."""
    return KernelRecord(
        kernel_id=request.kernel_id, kernelspec=request.spec.name, username=request.username,
        env=dict(request.env), launch_timeout=request.timeout, placement=placement, phase=Phase.LAUNCHING,
        actor=actor, launched_at=now, launch_deadline=launch_deadline(now, request.timeout, grace),
        last_activity=now,
    )


def claimed(record: KernelRecord, phase: Phase, *, actor: str, now: datetime, deadline: datetime,
            kind: RestartKind | None = None, restart_count: int | None = None) -> KernelRecord:
    """``record`` taken over by ``actor`` for ``phase`` (restarting or terminating) until ``deadline``."""
    return replace(record, phase=phase, actor=actor, launch_deadline=deadline,
                   restart_kind=kind if phase is Phase.RESTARTING else record.restart_kind,
                   restart_count=record.restart_count if restart_count is None else restart_count)


def running(record: KernelRecord, kernel: RunningKernel, *, actor: str, now: datetime,
            restart_count: int) -> KernelRecord:
    """``record`` once a (re)launch answered on pod ``kernel``: its pod and connection info, key included."""
    info = kernel.connection
    return replace(
        record, phase=Phase.RUNNING, actor=actor, launched_at=now, last_activity=max(now, record.last_activity),
        restart_count=restart_count, restart_kind=None, launch_deadline=now,
        pod=RecordPod(kernel.placement.pod_name, kernel.pod_uid),
        connection=KernelEndpoints(**{**info.endpoint_fields(), "ip": kernel.pod_ip or info.ip}),
    )


def running_of(record: KernelRecord) -> RunningKernel | None:
    """The running kernel a ``running`` record describes (``None`` when it names no pod or connection)."""
    if record.pod is None or record.connection is None:
        return None
    info = ConnectionInfo(kernel_id=record.kernel_id, **record.connection.endpoint_fields())
    return RunningKernel(placement=placement_of(record.placement), connection=info, pod_ip=info.ip,
                         pod_uid=record.pod.uid)


def request_of(record: KernelRecord, spec: KernelSpecInfo | None) -> LaunchRequest:
    """The launch request of a kernel another replica started, with this replica's kernelspec of that name.

    Without one (this replica does not offer it), the kernel is still served but cannot be
    relaunched here: its template path does not exist, so a relaunch fails with a launch error.
    """
    if spec is None:
        spec = KernelSpecInfo(name=record.kernelspec, language="python", image="",
                              resource_dir=Path("/nonexistent") / record.kernelspec)
    return LaunchRequest(kernel_id=record.kernel_id, username=record.username, spec=spec, env=dict(record.env),
                         timeout=record.launch_timeout)
