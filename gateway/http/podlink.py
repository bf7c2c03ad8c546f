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

A client that names its session (``?session_id=``) talks to a kernel that hands its routing over
(an IPython kernel: ipykernel sets ``ROUTER_HANDOVER`` on shell, stdin and control,
``ipykernel/kernelapp.py``) under an identity made from the session and the kernel's key
(:func:`client_identity`), the same on every replica.  The kernel's ROUTER addresses a reply to
the identity its request came from; when the session's next websocket reaches another replica (this
one died, or a Service without affinity sent it there), that replica's sockets take the identity
over as they connect, and the replies to what the client asked here go there.  Any other kernel's
client gets an identity of its own, as before: a ROUTER without handover ignores a second
connection under an identity in use (libzmq's ``router_t::identify_peer``), which would leave the
session deaf while the first lives.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import uuid
from collections.abc import Callable

from gateway.kernels.channels import NUDGE_INTERVAL, channel_address, gateway_signer
from gateway.kernels.frames import FrameError, to_zmq, verified
from gateway.kernels.iopub import IopubFeed
from gateway.kernels.zmqreader import CallbackSocket
from gateway.provisioner.connection import ConnectionInfo

from .wsprotocol import Codec, Incoming

log = logging.getLogger("gateway.http.websocket")

OPENED_AT_ONCE = ("shell", "stdin")
"""A client's sockets opened with its link; stdin too, since the kernel's ``input_request`` comes unasked there."""

Write = Callable[[str | bytes, bool], None]
"""Writes one frame to the client: ``(payload, binary)``."""

HANDING_OVER_LANGUAGES = frozenset({"python"})
"""Kernelspec languages whose kernels hand a ROUTER identity over to its newest connection (ipykernel's)."""

_IDENTITY_CONTEXT = b"kernelgate client session\x00"


def client_identity(connection: ConnectionInfo, session_id: str, language: str) -> bytes | None:
    """The DEALER identity of a client session's sockets to a kernel's pod, or ``None`` for one of the link's own.

    Called by the bridge each time it links a session to a pod.  Made from the kernel's key, so
    that only who holds the key can take a session's replies, and from the ``session_id``, so that
    every replica makes the same one (32 hex digits: a ZeroMQ identity never begins with a zero
    byte).  ``None`` without a ``session_id`` or for a kernel that does not hand identities over.
    """
    if not session_id or language.lower() not in HANDING_OVER_LANGUAGES:
        return None
    mac = hmac.new(connection.key.encode("utf-8"), _IDENTITY_CONTEXT + session_id.encode("utf-8"), hashlib.sha256)
    return mac.hexdigest()[:32].encode("ascii")


class PodLink:
    """The client's own ``shell``/``control``/``stdin`` DEALERs to one pod, and its share of the pod's iopub feed."""

    def __init__(self, feed: IopubFeed, codec: Codec, write: Write, *, identity: bytes | None = None) -> None:
        connection = self.connection = feed.connection
        self.feed = feed
        self._signer = gateway_signer(connection)
        self._codec = codec
        self._write = write
        self._unlisten: Callable[[], None] | None = None
        self._nudges: list[bytes] = []  # msg ids of our kernel_info_requests (never relayed)
        self._answered: dict[bytes, asyncio.Future[None]] = {}  # of those, the ones awaited (confirm)
        self._sockets: dict[str, CallbackSocket] = {}
        # One identity on every socket, as a Jupyter client has: the kernel asks for input (``input_request``)
        # on its stdin ROUTER addressed to the identity the execute_request came from on shell.  Without a
        # session's identity, the pod's first client takes the shell socket of the launch's readiness check,
        # and its identity; with one, that socket is closed at once.
        shell = feed.take_shell()
        if identity is not None and shell is not None:
            shell.close()
            shell = None
        self.identity = identity or (shell.identity if shell is not None and shell.identity else uuid.uuid4().bytes)
        """The identity of the link's sockets (a session's, from :func:`client_identity`, or the link's own)."""
        self.keyed_to_session = identity is not None
        """Whether :attr:`identity` is a session's (the same on every replica), not the link's own."""
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
                              functools.partial(self._from_dealer, channel), identity=self.identity,
                              what=f"a websocket client's {channel} socket to kernel {self.connection.kernel_id}")

    @property
    def closed(self) -> bool:
        return self._closed

    def leave_feed(self) -> None:
        """Stop relaying the pod's iopub (a newer link of the session relays it now); the sockets relay on."""
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None

    def close(self) -> None:
        """Close the sockets and leave the iopub feed: nothing more reaches the client."""
        self._closed = True
        for waiter in self._answered.values():
            waiter.cancel()
        self._answered.clear()
        self.leave_feed()
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
        if self.feed.heard.is_set():
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            msg_id, request = self._signer.request("kernel_info_request")
            self._nudges.append(msg_id.encode())
            await self._sockets["shell"].send(request)
            try:
                async with asyncio.timeout(min(NUDGE_INTERVAL, remaining)):
                    await self.feed.heard.wait()
                return
            except TimeoutError:
                continue
        log.warning("kernel %s: iopub silent for %ss; relaying anyway", self.connection.kernel_id, timeout)

    async def send(self, incoming: Incoming) -> None:
        """Sign a client's message with the kernel's key and send it on its channel.

        The control socket is opened by the client's first message on it (most clients never send
        one: interrupts and shutdowns come through the REST API).  After :meth:`close` nothing is sent.
        """
        sock = self._socket(incoming.channel)
        if sock is not None:
            await sock.send(to_zmq(incoming.parts, self._signer.sign))

    def _socket(self, channel: str) -> CallbackSocket | None:
        """The link's socket on ``channel``, opened (and read, if relaying) on first use; ``None`` once closed."""
        sock = self._sockets.get(channel)
        if sock is None:
            if self._closed:
                return None
            sock = self._sockets[channel] = self._open(channel)
            if self._unlisten is not None:
                sock.start()
        return sock

    async def confirm(self) -> None:
        """Return once the link's sockets are connected and the kernel answered a ``kernel_info_request``
        on its control socket (not relayed).

        Called by the bridge when the link took a session's identity over from an older link: each
        socket's handshake gave the kernel the identity before the request went, so once control's
        answer is in, the kernel routes the session's replies here.  ipykernel answers on control while
        a cell runs.  The caller bounds the wait; :meth:`close` ends it.
        """
        for dealer in list(self._sockets.values()):
            await dealer.wait_open()
        sock = self._socket("control")
        if sock is None:
            return
        msg_id, request = self._signer.request("kernel_info_request")
        key = msg_id.encode()
        self._nudges.append(key)
        waiter = self._answered[key] = asyncio.get_running_loop().create_future()
        try:
            await sock.send(request)
            await waiter
        finally:
            self._answered.pop(key, None)

    def relay(self) -> None:
        """From now on, write every message of the pod to the client as it arrives (until :meth:`close`).

        Replies that came to the client's sockets before (to messages sent while connecting) go first.
        """
        if self._unlisten is None:
            self._unlisten = self.feed.listen(self._from_iopub)
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
            if channel == "control":  # parts[1] is the parent header: the answer to a confirm
                for msg_id, waiter in self._answered.items():
                    if msg_id in parts[1] and not waiter.done():
                        waiter.set_result(None)
            return  # answers our own kernel_info_request
        try:
            payload, binary = self._codec.encode(channel, parts)
        except FrameError as error:
            log.warning("kernel %s: a %s message was not relayed: %s", self.connection.kernel_id, channel, error)
            return
        self._write(payload, binary)
