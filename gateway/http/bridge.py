"""One websocket client's link to one kernel's ZMQ channels.

The websocket handler makes a :class:`KernelBridge` per client.  It opens
the client's own ``shell``/``control``/``stdin`` DEALER sockets (own
identities, so the kernel's replies come back to this client only) and its
own ``iopub`` SUB socket (every client sees every broadcast), and relays in
both directions without buffering: each kernel message is written to the
websocket as soon as it is read, each client message sent to the kernel as
soon as it is decoded.

Messages from the kernel are checked against its key; messages from the
client are signed with it (the client never holds the key).  A new iopub
subscription takes a moment to reach the kernel, so before relaying the
bridge "nudges" the kernel as Jupyter Server does (``kernel_info_request``
until iopub delivers), except while the kernel is busy and would not answer.

Restarts keep the websocket open: when the kernel service starts restarting
the kernel the bridge closes its sockets and tells the client ``restarting``
(and ``starting``), as Jupyter Server does; client messages are held; when
the new pod answers the bridge connects to it, sends what it held, and tells
the client the kernel's state.  When the kernel dies for good the client
hears ``dead`` and the websocket is closed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

import zmq

from gateway.kernels.channels import CHANNELS, NUDGE_INTERVAL, ChannelTimeout, KernelChannels
from gateway.kernels.kernel import AUTORESTARTING, BUSY, DEAD, IDLE, RESTARTING, STARTING, Kernel
from gateway.kernels.service import KernelService

from .wsprotocol import Codec, FrameError, Incoming, status_parts, to_zmq, verified

log = logging.getLogger("gateway.http.websocket")

MAX_HELD = 1000
"""Client messages held at most while the kernel restarts; more are dropped (and logged)."""

Write = Callable[[str | bytes, bool], None]


class KernelBridge:
    """Relays one websocket client's messages to one kernel and back (see the module docstring)."""

    def __init__(self, service: KernelService, kernel: Kernel, codec: Codec, write: Write,
                 close_client: Callable[[], None], *, nudge_timeout: float) -> None:
        self.service = service
        self.kernel = kernel
        self.codec = codec
        self._write = write
        self._close_client = close_client
        self._nudge_timeout = nudge_timeout
        self._channels: KernelChannels | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._held: list[Incoming] = []
        self._connecting: asyncio.Task[None] | None = None
        self._restarted = False
        self._closed = False
        self._session = str(uuid.uuid4())
        self._nudges: list[bytes] = []  # msg ids of our kernel_info_requests (never relayed)

    # ------------------------------------------------------------------ lifecycle (called by the handler)

    async def open(self) -> None:
        """Count the client as connected and connect to the kernel (unless it is restarting)."""
        self.kernel.add_listener(self._on_state)
        self.service.connected(self.kernel.id)
        if self.kernel.connection is not None and self.kernel.state not in (RESTARTING, AUTORESTARTING, STARTING):
            await self._connect()

    def close(self) -> None:
        """The client went away: close the sockets, stop listening, count it as disconnected."""
        if self._closed:
            return
        self._closed = True
        self.kernel.remove_listener(self._on_state)
        self.service.disconnected(self.kernel.id)
        if self._connecting is not None:
            self._connecting.cancel()
        self._drop_channels()

    async def receive(self, message: str | bytes) -> None:
        """A frame from the client: decode, record activity, sign and send (held while restarting)."""
        try:
            incoming = self.codec.decode(message)
        except FrameError as error:
            log.warning("kernel %s: a client message was ignored: %s", self.kernel.id, error)
            return
        self.service.record_activity(self.kernel.id, incoming.msg_type)
        channels = self._channels
        if channels is None:
            if len(self._held) >= MAX_HELD:
                log.warning("kernel %s: restarting; a client message was dropped", self.kernel.id)
                return
            self._held.append(incoming)
            return
        await self._forward(channels, incoming)

    # ------------------------------------------------------------------ ZMQ side

    async def _connect(self) -> None:
        connection = self.kernel.connection
        if connection is None:
            return
        channels = KernelChannels(connection, channels=CHANNELS)
        try:
            if self.kernel.execution_state != BUSY:
                await self._nudge(channels)
            # messages the client sent meanwhile go first, in order; no await between the last and going live
            while self._held and not self._closed:
                await self._forward(channels, self._held.pop(0))
        except BaseException:
            channels.close()
            raise
        if self._closed or self.kernel.connection is not connection:
            channels.close()
            return
        self._channels = channels
        self._readers = [asyncio.create_task(self._relay(channels, name), name=f"ws-{name}-{self.kernel.id}")
                         for name in CHANNELS]

    async def _nudge(self, channels: KernelChannels) -> None:
        """Send ``kernel_info_request`` every half second until iopub delivers (bounded).

        Our requests' replies and iopub messages are not relayed to the client
        (:meth:`_relay` drops what answers :attr:`_nudges`).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._nudge_timeout
        while (remaining := deadline - loop.time()) > 0:
            request = channels.message("kernel_info_request")
            self._nudges.append(request["header"]["msg_id"].encode())
            await channels.send_message("shell", request)
            try:
                await channels.recv_raw("iopub", min(NUDGE_INTERVAL, remaining))
                return
            except ChannelTimeout:
                continue
        log.warning("kernel %s: iopub silent for %ss; relaying anyway", self.kernel.id, self._nudge_timeout)

    async def _reconnect(self) -> None:
        try:
            await self._connect()
            if self._channels is not None and self._restarted:
                self._restarted = False
                self._send_status(self.kernel.execution_state)
        except (zmq.ZMQError, OSError) as error:
            log.warning("kernel %s: could not reconnect a client after a restart: %s", self.kernel.id, error)
            self._close_client()
        finally:
            self._connecting = None

    async def _forward(self, channels: KernelChannels, incoming: Incoming) -> None:
        frames = to_zmq(incoming.parts, channels.session.sign)
        await channels.send_raw(incoming.channel, frames)

    async def _relay(self, channels: KernelChannels, channel: str) -> None:
        """Write every message of ``channel`` to the client as it arrives."""
        sock = channels.socket(channel)
        sign = channels.session.sign
        while True:
            try:
                frames = await sock.recv_multipart()
            except zmq.ZMQError:
                return  # the socket was closed: the client left or the kernel restarts
            try:
                parts = verified(frames, sign)
            except FrameError as error:
                log.warning("kernel %s: a %s message was not relayed: %s", self.kernel.id, channel, error)
                continue
            if self._nudges and any(msg_id in parts[1] for msg_id in self._nudges):
                continue  # answers our own kernel_info_request
            payload, binary = self.codec.encode(channel, parts)
            self._write(payload, binary)

    def _drop_channels(self) -> None:
        channels, self._channels = self._channels, None
        readers, self._readers = self._readers, []
        for task in readers:
            task.cancel()
        if channels is not None:
            channels.close()

    # ------------------------------------------------------------------ kernel lifecycle

    def _on_state(self, kernel: Kernel, state: str) -> None:
        """A lifecycle state of the kernel (called by the kernel service, synchronously)."""
        if self._closed:
            return
        if state in (RESTARTING, AUTORESTARTING):
            self._drop_channels()
            self._restarted = True
            self._send_status("restarting")
        elif state == STARTING and self._restarted:
            self._send_status("starting")
        elif state == IDLE and self._channels is None and self._connecting is None:
            self._connecting = asyncio.create_task(self._reconnect(), name=f"ws-reconnect-{kernel.id}")
        elif state == DEAD:
            self._send_status("dead")
            self._drop_channels()
            self._close_client()

    def _send_status(self, execution_state: str) -> None:
        payload, binary = self.codec.encode("iopub", status_parts(execution_state, self._session))
        self._write(payload, binary)
