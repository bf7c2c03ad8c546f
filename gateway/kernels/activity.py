"""Watching a running kernel's iopub for its execution state and last activity.

The kernel service starts one :class:`ActivityWatcher` per running kernel
(after each launch) and stops it before the pod goes away.  It is a single
iopub subscription: an idle kernel costs the gateway a silent socket and the
cluster nothing.  What counts as activity follows Jupyter Server's
``MappingKernelManager.start_watching_activity``: every message except those
of :data:`UNTRACKED_MESSAGE_TYPES` (the chatter every client connection
causes), unless the kernel is busy; ``status`` messages set the execution
state only when they answer a tracked request.
"""

from __future__ import annotations

import asyncio
import logging

import zmq
from jupyter_client.session import Session

from gateway.aio import cancel_and_wait

from .channels import KernelChannels
from .kernel import BUSY, Kernel

log = logging.getLogger("gateway.kernels.activity")

UNTRACKED_MESSAGE_TYPES = frozenset({
    "comm_info_request", "comm_info_reply", "kernel_info_request", "kernel_info_reply",
    "shutdown_request", "shutdown_reply", "interrupt_request", "interrupt_reply",
    "debug_request", "debug_reply", "stream", "display_data", "update_display_data",
    "execute_input", "execute_result", "error", "status", "clear_output", "debug_event",
    "input_request", "input_reply",
})


def is_tracked(msg_type: str | None) -> bool:
    """Whether a message of this type (or a reply to one) counts as use of the kernel."""
    return msg_type is not None and msg_type not in UNTRACKED_MESSAGE_TYPES


def record(kernel: Kernel, msg_type: str, parent_msg_type: str | None, execution_state: str | None) -> None:
    """Apply one observed message to ``kernel``'s activity and state.

    Called for every iopub message by the watcher, and by the kernel service's
    ``record_activity`` for messages clients send through the websocket bridge.
    """
    tracked = is_tracked(msg_type) or is_tracked(parent_msg_type)
    if tracked or kernel.execution_state == BUSY:
        kernel.touch()
    if msg_type == "status" and execution_state:
        kernel.observe_status(execution_state, tracked=is_tracked(parent_msg_type))


class ActivityWatcher:
    """An iopub subscription updating one kernel; :meth:`stop` closes it."""

    def __init__(self, kernel: Kernel, *, session: Session | None = None) -> None:
        """``session``: one already keyed for the kernel's connection (a new one when ``None``)."""
        if kernel.connection is None:
            raise ValueError(f"kernel {kernel.id} has no connection")
        self.kernel = kernel
        self.channels = KernelChannels(kernel.connection, channels=("iopub",), session=session)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Subscribe (called by the kernel service once the kernel's launch answered)."""
        self._task = asyncio.create_task(self._run(), name=f"activity-{self.kernel.id}")

    async def stop(self) -> None:
        """Unsubscribe (called by the kernel service before the kernel's pod is stopped)."""
        task, self._task = self._task, None
        try:
            if task is not None:
                await cancel_and_wait(task)
        finally:
            self.channels.close()

    async def _run(self) -> None:
        while True:
            try:
                parts = await self.channels.recv_raw("iopub")
            except zmq.ZMQError:
                return  # closed under us by stop()
            try:
                msg = self.channels.parse(parts, content=False)
            except ValueError:
                log.warning("kernel %s: an iopub message with a bad signature was ignored", self.kernel.id)
                continue
            msg_type = msg["header"].get("msg_type", "")
            parent = msg.get("parent_header") or {}
            state = None
            if msg_type == "status":
                content = self.channels.session.unpack(msg["content"])
                state = content.get("execution_state") if isinstance(content, dict) else None
            record(self.kernel, msg_type, parent.get("msg_type"), state)
