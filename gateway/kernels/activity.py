"""What a kernel's messages say about its execution state and last activity.

The kernel's iopub feed (:mod:`gateway.kernels.iopub`) applies every message the
kernel publishes, and the kernel service every message a client sends through
the websocket bridge.  What counts as activity follows Jupyter Server's
``MappingKernelManager.start_watching_activity``: every message except those
of :data:`UNTRACKED_MESSAGE_TYPES` (the chatter every client connection
causes), unless the kernel is busy; ``status`` messages set the execution
state only when they answer a tracked request.
"""

from __future__ import annotations

from .kernel import BUSY, Kernel

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
