"""A kernel's execution state and activity from the messages it exchanges, as Jupyter Server tracks them."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.kernels.activity import record
from gateway.kernels.culling import should_cull
from gateway.kernels.kernel import (
    BUSY,
    DEAD,
    IDLE,
    RESTARTING,
    STARTING,
    TERMINATING,
    IllegalTransition,
    Kernel,
    utcnow,
)
from gateway.kernels.settings import KernelSettings
from gateway.provisioner.connection import ConnectionInfo
from gateway.provisioner.model import LaunchRequest, Placement, RunningKernel
from gateway.provisioner.spec import KernelSpecInfo

SPEC = KernelSpecInfo(name="python_kubernetes", language="python", image="elyra/kernel-py:dev",
                      resource_dir=Path("/nonexistent"))


def new_kernel() -> Kernel:
    return Kernel(LaunchRequest(kernel_id=str(uuid.uuid4()), username="alice", spec=SPEC))


def aged(kernel: Kernel, minutes: float) -> Kernel:
    kernel.last_activity = utcnow() - timedelta(minutes=minutes)
    return kernel


def test_model_fields_and_timestamp_format() -> None:
    kernel = new_kernel()
    model = kernel.model()
    assert model == {"id": kernel.id, "name": "python_kubernetes", "execution_state": STARTING, "connections": 0,
                     "last_activity": kernel.last_activity.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    kernel.set_state(DEAD, reason="The kernel died.")
    assert kernel.model()["reason"] == "The kernel died."


def test_status_of_a_tracked_request_sets_the_state() -> None:
    kernel = new_kernel()
    kernel.set_state(IDLE)
    record(kernel, "status", "execute_request", BUSY)
    assert kernel.execution_state == BUSY
    record(kernel, "status", "execute_request", IDLE)
    assert kernel.execution_state == IDLE


def test_status_of_client_chatter_does_not_make_a_kernel_look_used() -> None:
    kernel = aged(new_kernel(), 10)
    kernel.set_state(IDLE)
    before = kernel.last_activity
    record(kernel, "status", "kernel_info_request", BUSY)
    record(kernel, "kernel_info_reply", "kernel_info_request", None)
    assert kernel.execution_state == IDLE and kernel.last_activity == before


def test_a_starting_kernel_is_idle_when_its_launch_ends_whatever_iopub_said() -> None:
    # What iopub says while a kernel starts does not end starting: the launch's end does, and tells the listeners.
    kernel = new_kernel()
    heard: list[str] = []
    kernel.add_listener(lambda _, state: heard.append(state))
    record(kernel, "status", "kernel_info_request", BUSY)
    record(kernel, "status", "execute_request", IDLE)
    assert kernel.execution_state == STARTING and heard == []
    connection = ConnectionInfo(kernel_id=kernel.id, ip="127.0.0.1", shell_port=1, iopub_port=2, stdin_port=3,
                                control_port=4, hb_port=5, key="k")
    kernel.launched(RunningKernel(Placement("ns", "default", owns_namespace=True, pod_name="p"), connection,
                                  pod_ip="127.0.0.1", pod_uid=str(uuid.uuid4())))
    assert kernel.execution_state == IDLE and heard == [IDLE]  # a websocket bridge waiting for the kernel hears it


def test_output_while_busy_is_activity() -> None:
    kernel = new_kernel()
    kernel.set_state(IDLE)
    record(kernel, "status", "execute_request", BUSY)
    aged(kernel, 10)
    record(kernel, "stream", "execute_request", None)
    assert utcnow() - kernel.last_activity < timedelta(minutes=1)


def test_lifecycle_states_are_not_overwritten_by_iopub() -> None:
    kernel = new_kernel()
    kernel.set_state(RESTARTING)
    record(kernel, "status", "execute_request", IDLE)
    assert kernel.execution_state == RESTARTING
    kernel.set_state(DEAD)
    with pytest.raises(IllegalTransition):
        kernel.set_state(IDLE)
    assert kernel.execution_state == DEAD


def test_listeners_hear_lifecycle_states() -> None:
    kernel = new_kernel()
    heard: list[str] = []
    kernel.add_listener(lambda k, state: heard.append(state))
    kernel.set_state(TERMINATING)
    kernel.set_state(DEAD)
    assert heard == [TERMINATING, DEAD]


@pytest.mark.parametrize(("state", "connections", "minutes", "cull_busy", "cull_connected", "culled"), [
    (IDLE, 0, 10, False, False, True),
    (IDLE, 0, 0.5, False, False, False),  # not idle long enough
    (BUSY, 0, 10, False, False, False),
    (BUSY, 0, 10, True, False, True),
    (IDLE, 2, 10, False, False, False),
    (IDLE, 2, 10, False, True, True),
    (STARTING, 0, 10, True, True, False),
    (RESTARTING, 0, 10, True, True, False),
])
def test_cull_criteria(state: str, connections: int, minutes: float, cull_busy: bool, cull_connected: bool,
                       culled: bool) -> None:
    kernel = new_kernel()
    kernel.execution_state = state
    kernel.connections = connections
    aged(kernel, minutes)
    settings = KernelSettings(cull_idle_timeout=60, cull_busy=cull_busy, cull_connected=cull_connected)
    assert should_cull(kernel, settings, utcnow()) is culled
    assert should_cull(kernel, KernelSettings(cull_idle_timeout=0, cull_busy=True, cull_connected=True), utcnow()) is False
