"""The gateway's one iopub subscription to a running kernel pod, shared by its activity and every websocket client.

:class:`IopubFeed` is opened by :class:`~gateway.kernels.pods.KernelPods` as soon as a
launch's kernel has answered its readiness check, and closed before the pod is stopped; the kernel holds it as :attr:`~gateway.kernels.kernel.Kernel.iopub`
meanwhile.  Each message is read once, its signature checked once
(:func:`~gateway.kernels.frames.verified`), applied to the kernel's activity and execution
state (:func:`~gateway.kernels.activity.record`), then handed, as checked parts, to every
listener: each websocket client's link (:mod:`gateway.http.podlink`) writes it to its client.

One subscription instead of one per client: a client connecting costs no SUB socket of its own,
and once the feed has heard the kernel (:attr:`IopubFeed.heard`: its subscription has surely
reached the kernel's publisher) a client needs no ``kernel_info_request`` "nudge" before relaying,
since nothing published from then on can be lost to it: the first client's nudge, or the
kernel's own output, is what the feed hears first, and later clients connect without one.  (It
is not opened before the kernel answers: a subscription made while the pod's ports were still
only reserved sometimes never received anything.)  An idle kernel costs the gateway one silent socket and
the cluster nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import orjson

from gateway.provisioner.connection import ConnectionInfo

from .activity import record
from .channels import channel_address, gateway_signer
from .frames import verified
from .kernel import Kernel
from .zmqreader import CallbackSocket

log = logging.getLogger("gateway.kernels.iopub")

KEPT_SHELL_SECONDS = 10.0
"""How long the readiness check's shell socket waits for a client to take it: a client connects right
after its start answers; a kernel started only through the REST API does not hold the socket for longer."""

Listener = Callable[[list[bytes]], None]
"""Takes one checked iopub message's parts (header, parent, metadata, content, buffers...)."""


class IopubFeed:
    """One kernel pod's iopub, read once for the kernel's activity and for every listener (see the module docstring)."""

    def __init__(self, kernel: Kernel, connection: ConnectionInfo, *, shell: CallbackSocket | None = None) -> None:
        self.kernel = kernel
        self.connection = connection
        self.heard = asyncio.Event()
        """Set at the first message: the subscription has reached the kernel."""
        self._sign = gateway_signer(connection).sign
        self._listeners: list[Listener] = []
        self._socket = CallbackSocket("SUB", channel_address(connection, "iopub"),
                                      self._take, what=f"the iopub subscription of kernel {kernel.id}", subscribe=True)
        self._shell = shell
        """The readiness check's shell DEALER, until the first client takes it or :data:`KEPT_SHELL_SECONDS` pass."""
        self._shell_timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Begin reading (called by :class:`~gateway.kernels.pods.KernelPods` right after making the feed)."""
        self._socket.start()
        if self._shell is not None:
            self._shell_timer = asyncio.get_running_loop().call_later(KEPT_SHELL_SECONDS, self._drop_shell)

    async def stop(self) -> None:
        """Stop reading and close the socket (called before the kernel's pod is stopped); listeners hear no more."""
        self._socket.close()
        self._drop_shell()
        self._listeners.clear()

    def take_shell(self) -> CallbackSocket | None:
        """The shell DEALER the launch's readiness check asked on, once: the first websocket client's link
        takes it (connected to the kernel already, it spares opening one).  ``None`` when there is none
        (taken, dropped, or the pod was adopted from another replica)."""
        shell, self._shell = self._shell, None
        if self._shell_timer is not None:
            self._shell_timer.cancel()
            self._shell_timer = None
        return shell

    def _drop_shell(self) -> None:
        shell = self.take_shell()
        if shell is not None:
            shell.close()

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Hand every message from now on to ``listener`` too; returns what stops that (a link's close)."""
        self._listeners.append(listener)

        def unlisten() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unlisten

    def _take(self, frames: list[bytes]) -> None:
        try:
            parts = verified(frames, self._sign)
            header, parent = _loads_strict(parts[0]), _loads_strict(parts[1])
        except ValueError:  # FrameError included
            header = parent = None
        msg_type = header.get("msg_type") if isinstance(header, dict) else None
        if not isinstance(msg_type, str):
            log.warning("kernel %s: an iopub message that is not a signed kernel message was ignored", self.kernel.id)
            return
        self.heard.set()
        state = None
        if msg_type == "status":
            content = _loads(parts[3])
            state = content.get("execution_state") if isinstance(content, dict) else None
        record(self.kernel, msg_type, parent.get("msg_type") if isinstance(parent, dict) else None, state)
        for listener in tuple(self._listeners):
            try:
                listener(parts)
            except Exception:  # one client's failure is not the others'
                log.exception("kernel %s: an iopub message could not be handed to a client", self.kernel.id)


def _loads_strict(part: bytes) -> object:
    """A header, parent header or status content: orjson's parse, else (``NaN`` in a field the
    gateway does not read, say) the standard library's; ``ValueError`` when neither parses it.
    Only the message's type, its parent's and the execution state are read from it."""
    try:
        return orjson.loads(part)
    except ValueError:
        return json.loads(part)


def _loads(part: bytes) -> object:
    try:
        return _loads_strict(part)
    except ValueError:
        return None
