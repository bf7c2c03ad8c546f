"""One websocket client's sockets to one pod of its kernel, and the relay from them to the client.

A :class:`~gateway.http.bridge.KernelBridge` makes a :class:`PodLink` each
time it connects (once, and again after each restart, since a new pod has new
connection info) and closes it when the bridge stops relaying.  The link
signs what the client sends, and its readers check what the kernel sends and
write it to the client as it arrives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import zmq

from gateway.kernels.channels import CHANNELS, NUDGE_INTERVAL, ChannelTimeout, KernelChannels
from gateway.provisioner.connection import ConnectionInfo

from .wsprotocol import Codec, FrameError, Incoming, to_zmq, verified

log = logging.getLogger("gateway.http.websocket")

Write = Callable[[str | bytes, bool], None]
"""Writes one frame to the client: ``(payload, binary)``."""


class PodLink:
    """The client's own ``shell``/``control``/``stdin`` DEALERs and ``iopub`` SUB to one pod (see the module docstring)."""

    def __init__(self, connection: ConnectionInfo, codec: Codec, write: Write) -> None:
        self.connection = connection
        self.channels = KernelChannels(connection, channels=CHANNELS)
        self._codec = codec
        self._write = write
        self._nudges: list[bytes] = []  # msg ids of our kernel_info_requests (never relayed)

    def close(self) -> None:
        """Close the sockets; a reader waiting on one of them ends."""
        self.channels.close()

    async def nudge(self, timeout: float) -> None:
        """Send ``kernel_info_request`` every half second until iopub delivers, for at most ``timeout`` seconds.

        A new iopub subscription takes a moment to reach the kernel, and what
        the kernel publishes before is lost to this client: the bridge calls this
        before relaying, as Jupyter Server does.  Our requests' replies and the
        iopub messages they cause are not relayed (:meth:`relay` drops them).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            request = self.channels.message("kernel_info_request")
            self._nudges.append(request["header"]["msg_id"].encode())
            await self.channels.send_message("shell", request)
            try:
                await self.channels.recv_raw("iopub", min(NUDGE_INTERVAL, remaining))
                return
            except ChannelTimeout:
                continue
        log.warning("kernel %s: iopub silent for %ss; relaying anyway", self.connection.kernel_id, timeout)

    async def send(self, incoming: Incoming) -> None:
        """Sign a client's message with the kernel's key and send it on its channel."""
        frames = to_zmq(incoming.parts, self.channels.session.sign)
        await self.channels.send_raw(incoming.channel, frames)

    async def relay(self, channel: str) -> None:
        """A reader task: write every message of ``channel`` to the client as it arrives, until the socket closes."""
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
            if self._nudges and any(msg_id in parts[1] for msg_id in self._nudges):
                continue  # answers our own kernel_info_request
            payload, binary = self._codec.encode(channel, parts)
            self._write(payload, binary)
