"""The states of a websocket client's link to its kernel, and which state may follow which.

:class:`~gateway.http.bridge.KernelBridge` is in one :class:`BridgeState` at a
time and moves only along :data:`TRANSITIONS`; a move the table does not allow
raises :class:`IllegalTransition`.  What moves it: the websocket handler
(``open()``, ``close()``), the bridge's connect task, and the lifecycle states
the kernel service sets on the kernel (:meth:`~gateway.kernels.kernel.Kernel.set_state`)::

                  open(): the kernel has a pod            sockets up, held messages sent
      new ──────────────────────────────────► connecting ─────────────────────────────► relaying
       │                                       ▲       ▲    │                              │
       │ open(): the kernel is            idle │  idle │    │ restarting,                  │ restarting,
       │ starting or restarting                │       │    │ autorestarting               │ autorestarting
       ▼                                       │       │    ▼                              │
    waiting ───────────────────────────────────┘       └─ restarting ◄─────────────────────┘
       │                                                    ▲
       └──────────────── restarting, autorestarting ────────┘

    waiting, connecting, restarting, relaying ─── dead ───► closing ─── close() ───► closed
    connecting (after idle) ─── the new pod's sockets cannot be made ───► closing
    new, waiting, connecting, restarting, relaying ─── close(): the websocket closed ───► closed

What the client hears: ``restarting`` on each move into restarting the kernel's
``autorestarting`` causes (also from restarting itself, when a relaunch failed
and the kernel restarts again; a restart the client asked for is not announced),
``starting`` when the kernel starts while the bridge is restarting, the
kernel's state once relaying after restarting, and ``dead`` on the move to
closing on the kernel's death.  Client messages are held while waiting,
connecting and restarting.  Kernel states not drawn (``terminating``,
``starting`` elsewhere, ``idle`` while connecting or relaying) change nothing,
and nothing the kernel does matters once the bridge is closing or closed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class BridgeState(enum.Enum):
    """Where one :class:`~gateway.http.bridge.KernelBridge` is in its life (see the module docstring)."""

    NEW = "new"
    """Made by the handler; ``open()`` not called yet."""
    CONNECTING = "connecting"
    """Opening the client's sockets to the kernel's pod, nudging it, then sending the messages held meanwhile."""
    RELAYING = "relaying"
    """Every message goes through as soon as it arrives, both ways."""
    WAITING = "waiting"
    """The client came while the kernel had no pod to connect to; its messages are held until the kernel is idle."""
    RESTARTING = "restarting"
    """The kernel's pod is being replaced (after an auto-restart, the client was told ``restarting``); messages are
    held meanwhile."""
    CLOSING = "closing"
    """The gateway is closing the websocket (the kernel died, or its new pod could not be reached)."""
    CLOSED = "closed"
    """The client is gone: sockets closed, no longer listening to the kernel nor counted as a connection."""


TRANSITIONS: Mapping[BridgeState, frozenset[BridgeState]] = {
    BridgeState.NEW: frozenset({BridgeState.CONNECTING, BridgeState.WAITING, BridgeState.CLOSED}),
    BridgeState.CONNECTING: frozenset({BridgeState.RELAYING, BridgeState.RESTARTING, BridgeState.CLOSING,
                                       BridgeState.CLOSED}),
    BridgeState.WAITING: frozenset({BridgeState.CONNECTING, BridgeState.RESTARTING, BridgeState.CLOSING,
                                    BridgeState.CLOSED}),
    BridgeState.RESTARTING: frozenset({BridgeState.RESTARTING, BridgeState.CONNECTING, BridgeState.CLOSING,
                                       BridgeState.CLOSED}),
    BridgeState.RELAYING: frozenset({BridgeState.RESTARTING, BridgeState.CLOSING, BridgeState.CLOSED}),
    BridgeState.CLOSING: frozenset({BridgeState.CLOSED}),
    BridgeState.CLOSED: frozenset(),
}
"""The states each state may move to (``restarting`` to itself: a relaunch failed and the kernel restarts again)."""

HOLDING = frozenset({BridgeState.WAITING, BridgeState.CONNECTING, BridgeState.RESTARTING})
"""States in which client messages are held (at most ``MAX_HELD``) until the bridge relays."""

ENDING = frozenset({BridgeState.CLOSING, BridgeState.CLOSED})
"""States in which the kernel's lifecycle no longer concerns the client."""


class IllegalTransition(RuntimeError):
    """A move the transition table does not allow: a fault in the bridge, never the client's doing."""

    def __init__(self, current: BridgeState, target: BridgeState) -> None:
        super().__init__(f"a websocket bridge cannot go from {current.value} to {target.value}")
        self.current = current
        self.target = target


def check_transition(current: BridgeState, target: BridgeState) -> None:
    """Raise :class:`IllegalTransition` unless :data:`TRANSITIONS` lets ``current`` move to ``target``."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)
