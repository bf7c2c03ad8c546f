"""One websocket client's sockets to one pod of its kernel, and the relay from them to the client.

A :class:`~gateway.http.bridge.KernelBridge` makes a :class:`PodLink` each
time it connects (once, and again after each restart, since a new pod has new
connection info) and closes it when the bridge stops relaying.  The link
signs what the client sends; its readers check what the kernel sends on the
client's own DEALER sockets and write it to the client as it arrives, and the
pod's iopub reaches the client from the gateway's one subscription to it (the
kernel's :class:`~gateway.kernels.iopub.IopubFeed`), which checked it already.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import zmq

from gateway.kernels.channels import NUDGE_INTERVAL, KernelChannels, gateway_session
from gateway.kernels.frames import FrameError, to_zmq, verified
from gateway.kernels.iopub import IopubFeed
from gateway.provisioner.connection import ConnectionInfo

from .wsprotocol import CLIENT_CHANNELS, Codec, Incoming

log = logging.getLogger("gateway.http.websocket")

Write = Callable[[str | bytes, bool], None]
"""Writes one frame to the client: ``(payload, binary)``."""


class PodLink:
    """The client's own ``shell``/``control``/``stdin`` DEALERs to one pod, and its share of the pod's iopub feed."""

    def __init__(self, feed: IopubFeed, codec: Codec, write: Write) -> None:
        self.connection: ConnectionInfo = feed.connection
        self.channels = KernelChannels(feed.connection, channels=CLIENT_CHANNELS,
                                       session=gateway_session(feed.connection))
        self._feed = feed
        self._codec = codec
        self._write = write
        self._unlisten: Callable[[], None] | None = None
        self._nudges: list[bytes] = []  # msg ids of our kernel_info_requests (never relayed)

    def close(self) -> None:
        """Close the sockets and leave the iopub feed; a reader waiting on a socket ends."""
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        self.channels.close()

    async def nudge(self, timeout: float) -> None:
        """Unless the iopub feed has heard the kernel: ``kernel_info_request`` every half second until it does.

        A new iopub subscription takes a moment to reach the kernel, and what the kernel publishes
        before is lost to it: the bridge calls this before relaying, as Jupyter Server does, for at
        most ``timeout`` seconds.  The feed is usually past that moment (it heard the answer to the
        launch's own request), and then nothing is sent.  Our requests' replies and the iopub
        messages they cause are not relayed.
        """
        if self._feed.heard.is_set():
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            request = self.channels.message("kernel_info_request")
            self._nudges.append(request["header"]["msg_id"].encode())
            await self.channels.send_message("shell", request)
            try:
                await asyncio.wait_for(self._feed.heard.wait(), min(NUDGE_INTERVAL, remaining))
                return
            except asyncio.TimeoutError:
                continue
        log.warning("kernel %s: iopub silent for %ss; relaying anyway", self.connection.kernel_id, timeout)

    async def send(self, incoming: Incoming) -> None:
        """Sign a client's message with the kernel's key and send it on its channel."""
        frames = to_zmq(incoming.parts, self.channels.session.sign)
        await self.channels.send_raw(incoming.channel, frames)

    def relay_iopub(self) -> None:
        """From now on, write every iopub message of the pod to the client (until :meth:`close`)."""
        if self._unlisten is None:
            self._unlisten = self._feed.listen(self._from_iopub)

    async def relay(self, channel: str) -> None:
        """A reader task: write every message of ``channel`` (a DEALER's) to the client as it arrives, until the socket closes."""
        sock = self.channels.socket(channel)
        sign = self.channels.session.sign
        while True:
            try:
                frames = await sock.recv_multipart()
            except zmq.ZMQError:
                return  # the socket was closed: the client left or the kernel restarts
            try:
                parts = verified(frames, sign)
            except FrameError as error:
                log.warning("kernel %s: a %s message was not relayed: %s", self.connection.kernel_id, channel, error)
                continue
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
