"""One websocket client's sockets to one pod of its kernel, and the relay from them to the client.

A :class:`~gateway.http.bridge.KernelBridge` makes a :class:`PodLink` each
time it connects (once, and again after each restart, since a new pod has new
connection info) and closes it when the bridge stops relaying.  The link
signs what the client sends; what the kernel sends on the client's own DEALER
sockets (the pod's first client's shell is the one the launch's readiness check
asked on, kept by the pod's iopub feed) is checked and written to the client as
it arrives (each socket read by a callback, :mod:`gateway.kernels.zmqreader`),
and the pod's iopub reaches the client from the gateway's one subscription to it
(the kernel's :class:`~gateway.kernels.iopub.IopubFeed`), which checked it already.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable

from gateway.kernels.channels import NUDGE_INTERVAL, channel_address, gateway_signer
from gateway.kernels.frames import FrameError, to_zmq, verified
from gateway.kernels.iopub import IopubFeed
from gateway.kernels.zmqreader import CallbackSocket

from .wsprotocol import Codec, Incoming

log = logging.getLogger("gateway.http.websocket")

OPENED_AT_ONCE = ("shell", "stdin")
"""A client's sockets opened with its link; stdin too, since the kernel's ``input_request`` comes unasked there."""

Write = Callable[[str | bytes, bool], None]
"""Writes one frame to the client: ``(payload, binary)``."""


class PodLink:
    """The client's own ``shell``/``control``/``stdin`` DEALERs to one pod, and its share of the pod's iopub feed."""

    def __init__(self, feed: IopubFeed, codec: Codec, write: Write) -> None:
        connection = self.connection = feed.connection
        self._signer = gateway_signer(connection)
        self._feed = feed
        self._codec = codec
        self._write = write
        self._unlisten: Callable[[], None] | None = None
        self._nudges: list[bytes] = []  # msg ids of our kernel_info_requests (never relayed)
        self._sockets: dict[str, CallbackSocket] = {}
        # One identity on every socket, as a Jupyter client has: the kernel asks for input (``input_request``)
        # on its stdin ROUTER addressed to the identity the execute_request came from on shell.  The pod's
        # first client takes the shell socket of the launch's readiness check, and its identity.
        shell = feed.take_shell()
        self._identity = shell.identity if shell is not None and shell.identity else uuid.uuid4().bytes
        self._closed = False
        try:
            if shell is not None:
                shell.hand_over(functools.partial(self._from_dealer, "shell"))
                self._sockets["shell"] = shell
            for channel in OPENED_AT_ONCE:
                if channel not in self._sockets:
                    self._sockets[channel] = self._open(channel)
        except BaseException:
            self.close()
            raise

    def _open(self, channel: str) -> CallbackSocket:
        return CallbackSocket("DEALER", channel_address(self.connection, channel),
                              functools.partial(self._from_dealer, channel), identity=self._identity,
                              what=f"a websocket client's {channel} socket to kernel {self.connection.kernel_id}")

    def close(self) -> None:
        """Close the sockets and leave the iopub feed: nothing more reaches the client."""
        self._closed = True
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        for sock in self._sockets.values():
            sock.close()

    async def nudge(self, timeout: float) -> None:
        """Unless the iopub feed has heard the kernel: ``kernel_info_request`` every half second until it does.

        A new iopub subscription takes a moment to reach the kernel, and what the kernel publishes
        before is lost to it: the bridge calls this before relaying, as Jupyter Server does, for at
        most ``timeout`` seconds.  Once the feed has heard the kernel (an earlier client's nudge,
        the kernel's own output) nothing is sent.  Our requests' replies and the iopub
        messages they cause are not relayed.
        """
        if self._feed.heard.is_set():
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            msg_id, request = self._signer.request("kernel_info_request")
            self._nudges.append(msg_id.encode())
            await self._sockets["shell"].send(request)
            try:
                async with asyncio.timeout(min(NUDGE_INTERVAL, remaining)):
                    await self._feed.heard.wait()
                return
            except TimeoutError:
                continue
        log.warning("kernel %s: iopub silent for %ss; relaying anyway", self.connection.kernel_id, timeout)

    async def send(self, incoming: Incoming) -> None:
        """Sign a client's message with the kernel's key and send it on its channel.

        The control socket is opened by the client's first message on it (most clients never send
        one: interrupts and shutdowns come through the REST API).  After :meth:`close` nothing is sent.
        """
        sock = self._sockets.get(incoming.channel)
        if sock is None:
            if self._closed:
                return
            sock = self._sockets[incoming.channel] = self._open(incoming.channel)
            if self._unlisten is not None:
                sock.start()
        await sock.send(to_zmq(incoming.parts, self._signer.sign))

    def relay(self) -> None:
        """From now on, write every message of the pod to the client as it arrives (until :meth:`close`).

        Replies that came to the client's sockets before (to messages sent while connecting) go first.
        """
        if self._unlisten is None:
            self._unlisten = self._feed.listen(self._from_iopub)
            for sock in self._sockets.values():
                sock.start()

    def _from_dealer(self, channel: str, frames: list[bytes]) -> None:
        try:
            parts = verified(frames, self._signer.sign)
        except FrameError as error:
            log.warning("kernel %s: a %s message was not relayed: %s", self.connection.kernel_id, channel, error)
            return
        self._deliver(channel, parts)

    def _from_iopub(self, parts: list[bytes]) -> None:
        self._deliver("iopub", parts)

    def _deliver(self, channel: str, parts: list[bytes]) -> None:
        if self._nudges and any(msg_id in parts[1] for msg_id in self._nudges):
            return  # answers our own kernel_info_request
        try:
            payload, binary = self._codec.encode(channel, parts)
        except FrameError as error:
            log.warning("kernel %s: a %s message was not relayed: %s", self.connection.kernel_id, channel, error)
            return
        self._write(payload, binary)
