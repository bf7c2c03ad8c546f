"""ZMQ sockets to one kernel: the plumbing the kernel service and the websocket bridge share.

:class:`KernelChannels` connects to a kernel's ``shell``, ``control`` and
``stdin`` (DEALER) and ``iopub`` (SUB) ports from its
:class:`~gateway.provisioner.connection.ConnectionInfo`, with asyncio sockets,
and signs / checks messages with a ``jupyter_client`` ``Session`` keyed by the
kernel's key: the kernel service's own requests (a shutdown on control) use it.
:func:`kernel_answers` is the launch's readiness check.  The gateway's one iopub
subscription per pod is :mod:`gateway.kernels.iopub`'s, and each websocket client's
own DEALERs are :class:`~gateway.http.podlink.PodLink`'s, with their own identity
as in Jupyter Server.  Those (and the readiness check's socket) are each a
:class:`~gateway.kernels.zmqreader.CallbackSocket`, speaking ZMTP on the event loop;
they relay without decoding and sign with the pod's
:class:`~gateway.kernels.signing.MessageSigner` (:func:`gateway_signer`).

Messages are the dicts ``Session.msg`` builds (``header``, ``parent_header``,
``metadata``, ``content``, ``buffers``); raw multipart frames are available
for a bridge that relays without decoding.
"""

from __future__ import annotations

import asyncio
import resource
import uuid
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import zmq
import zmq.asyncio
from jupyter_client.session import Session

from gateway.provisioner.connection import ConnectionInfo

from .frames import verified
from .signing import MessageSigner
from .zmqreader import RETRY_FIRST, CallbackSocket

CHANNELS = ("shell", "control", "stdin", "iopub")
_SOCKET_TYPES = {"shell": zmq.DEALER, "control": zmq.DEALER, "stdin": zmq.DEALER, "iopub": zmq.SUB}
NUDGE_INTERVAL = 0.5
"""Longest wait between ``kernel_info_request`` nudges while waiting for iopub to deliver (Jupyter Server's)."""
FIRST_NUDGE_WAIT = 0.02
"""The first nudge is answered within milliseconds once the SUB socket is connected: retry early, then back off."""


FDS_PER_SOCKET = 2
"""File descriptors a connected ZMQ socket holds (its TCP connection and its mailbox)."""
MAX_OPEN_FILES = 1 << 20


def allow_many_sockets() -> int:
    """Let this process hold a socket per kernel for as many kernels as its open-file limit allows.

    Called once by ``kernelgate serve`` before any channel opens (ZMQ reads the limit when the
    shared context makes its first socket).  A soft open-file limit of 1,024 (and ZMQ's default
    of 1,023 sockets per context, when the iopub subscriptions were ZMQ's) stopped a gateway at
    about a thousand kernels: it follows every running kernel's iopub, and each websocket client
    holds two more connections (three once it uses control), one descriptor each
    (:class:`~gateway.kernels.zmqreader.CallbackSocket`).  Raises the soft limit to the hard one,
    and the context's socket limit (for :class:`KernelChannels`) with it; returns the latter.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass  # the soft limit stands; so does the socket limit it allows
    context = zmq.asyncio.Context.instance()
    sockets = max(context.get(zmq.MAX_SOCKETS), soft // FDS_PER_SOCKET)
    context.set(zmq.MAX_SOCKETS, sockets)
    return int(context.get(zmq.MAX_SOCKETS))


def channel_address(connection: ConnectionInfo, channel: str) -> str:
    """The ZeroMQ address of the kernel's ``channel`` port (``shell``, ``control``, ``stdin`` or ``iopub``)."""
    return f"{connection.transport}://{connection.ip}:{getattr(connection, f'{channel}_port')}"


class ChannelTimeout(asyncio.TimeoutError):
    """No (matching) message arrived on a channel in time; ``detail``: how the socket's connection stood."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def new_session(connection: ConnectionInfo, *, username: str = "kernelgate") -> Session:
    """A ``Session`` that signs with the kernel's key and scheme (a fresh session id)."""
    return Session(
        key=connection.key.encode("utf-8"),
        signature_scheme=connection.signature_scheme,
        username=username,
        session=str(uuid.uuid4()),
    )


_sessions: weakref.WeakKeyDictionary[ConnectionInfo, Session] = weakref.WeakKeyDictionary()
_signers: weakref.WeakKeyDictionary[ConnectionInfo, MessageSigner] = weakref.WeakKeyDictionary()


def gateway_signer(connection: ConnectionInfo) -> MessageSigner:
    """The one :class:`MessageSigner` the gateway's relaying channels to a kernel pod share.

    Made on first use per connection info (so once per pod, by the launch's readiness check)
    and used by the iopub feed and each websocket client's link: each checks what it reads
    itself (:func:`gateway.kernels.frames.verified`), so sharing the key's HMAC is all they share.
    """
    signer = _signers.get(connection)
    if signer is None:
        signer = _signers[connection] = MessageSigner(connection.key.encode("utf-8"), connection.signature_scheme)
    return signer


def gateway_session(connection: ConnectionInfo) -> Session:
    """The one ``Session`` the kernel service's own :class:`KernelChannels` to a kernel pod use.

    Made on first use per connection info (an interrupt or shutdown on control, a restart's
    wait for the new kernel): building a ``Session`` (traitlets, its packers' checks) costs
    about as much as opening a channel.  Sharing holds because no two of them parse the same
    message (the replay check remembers each signature it parsed): each request's reply comes
    to its own socket.  Any other reader of a kernel makes its own (:func:`new_session`, what
    :class:`KernelChannels` makes when given none).
    """
    session = _sessions.get(connection)
    if session is None:
        session = _sessions[connection] = new_session(connection)
    return session


async def kernel_answers(connection: ConnectionInfo, signer: MessageSigner, timeout: float) -> CallbackSocket:
    """Send the kernel one ``kernel_info_request`` on shell and return once its reply arrives.

    The launch's readiness check (:class:`~gateway.kernels.pods.KernelPods`), on a DEALER read by
    callback (:class:`~gateway.kernels.zmqreader.CallbackSocket`): a message that is not the reply,
    or whose signature does not check, is passed over.  :class:`ChannelTimeout` after ``timeout``
    (the socket closed).  Returns the DEALER, connected and no longer read, for the caller to keep
    (the pod's first websocket client takes it: one socket fewer to open) or to close.
    """
    msg_id, request = signer.request("kernel_info_request")
    answered = asyncio.get_running_loop().create_future()

    def receive(frames: list[bytes]) -> None:
        if answered.done():
            return
        try:
            parent = orjson.loads(verified(frames, signer.sign)[1])
        except ValueError:  # FrameError (a bad signature included) or a parent header that is not JSON
            return
        if isinstance(parent, dict) and parent.get("msg_id") == msg_id:
            answered.set_result(None)

    sock = CallbackSocket("DEALER", channel_address(connection, "shell"), receive,
                          what=f"the shell socket of kernel {connection.kernel_id}", identity=uuid.uuid4().bytes,
                          retry_cap=RETRY_FIRST)  # the kernel is still importing: knock every 0.1 s
    try:
        sock.start()
        await sock.send(request)
        async with asyncio.timeout(timeout):
            await answered
    except TimeoutError:
        detail = f"its shell socket is {sock.condition()}"
        sock.close()
        raise ChannelTimeout(f"kernel {connection.kernel_id} did not answer a kernel_info_request "
                             f"within {timeout} s ({detail})", detail=detail) from None
    except BaseException:
        sock.close()
        raise
    sock.pause()
    return sock


class KernelChannels:
    """Async sockets to one kernel's channels; :meth:`close` them when done (also an ``async with``)."""

    def __init__(
        self,
        connection: ConnectionInfo,
        *,
        channels: Iterable[str] = CHANNELS,
        session: Session | None = None,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        self.connection = connection
        self.session = session or new_session(connection)
        self._context = context or zmq.asyncio.Context.instance()
        self._sockets: dict[str, zmq.asyncio.Socket] = {}
        try:
            for channel in channels:
                self._sockets[channel] = self._connect(channel)
        except BaseException:
            self.close()
            raise

    def _connect(self, channel: str) -> zmq.asyncio.Socket:
        if channel not in _SOCKET_TYPES:
            raise ValueError(f"unknown channel {channel!r}")
        sock = self._context.socket(_SOCKET_TYPES[channel])
        sock.linger = 0
        if channel == "iopub":
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        else:
            sock.identity = uuid.uuid4().bytes
        try:
            sock.connect(channel_address(self.connection, channel))
        except BaseException:
            sock.close(linger=0)  # not in self._sockets yet: close() would not see it
            raise
        return sock

    @property
    def channels(self) -> Sequence[str]:
        return tuple(self._sockets)

    def socket(self, channel: str) -> zmq.asyncio.Socket:
        """The socket of ``channel`` (``KeyError`` when not opened)."""
        return self._sockets[channel]

    @property
    def closed(self) -> bool:
        return not self._sockets

    def close(self) -> None:
        """Close every socket at once (linger 0: unsent messages are dropped)."""
        sockets, self._sockets = self._sockets, {}
        for sock in sockets.values():
            sock.close(linger=0)

    async def __aenter__(self) -> KernelChannels:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    # -- sending --

    def message(self, msg_type: str, content: dict[str, Any] | None = None, *,
                parent: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new message of this session (not sent)."""
        return self.session.msg(msg_type, content or {}, parent=parent, metadata=metadata)

    async def send(self, channel: str, msg_type: str, content: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """Build, sign and send a message; return it (its ``header.msg_id`` identifies the reply)."""
        msg = self.message(msg_type, content, **kwargs)
        await self.send_message(channel, msg)
        return msg

    async def send_message(self, channel: str, msg: dict[str, Any]) -> None:
        """Sign and send a message dict (``header``, ``parent_header``, ``metadata``, ``content``, ``buffers``)."""
        parts: list[Any] = self.session.serialize(msg)
        parts.extend(msg.get("buffers") or [])
        await self.send_raw(channel, parts)

    async def send_raw(self, channel: str, parts: Sequence[Any]) -> None:
        """Send already serialized frames (delimiter, signature, header... buffers) as they are."""
        await self._sockets[channel].send_multipart(list(parts))

    # -- receiving --

    async def recv_raw(self, channel: str, timeout: float | None = None) -> list[bytes]:
        """The next multipart message of ``channel``, unparsed (:class:`ChannelTimeout` after ``timeout``)."""
        try:
            return await asyncio.wait_for(self._sockets[channel].recv_multipart(), timeout)
        except asyncio.TimeoutError:
            raise ChannelTimeout(f"no message on {channel} within {timeout} s") from None

    def parse(self, parts: list[bytes], *, content: bool = True) -> dict[str, Any]:
        """Check the signature of raw frames and deserialize them (``ValueError`` on a bad signature)."""
        _idents, frames = self.session.feed_identities(parts, copy=True)
        return self.session.deserialize(frames, content=content, copy=True)

    async def recv(self, channel: str, timeout: float | None = None) -> dict[str, Any]:
        """The next message of ``channel``, checked and deserialized."""
        return self.parse(await self.recv_raw(channel, timeout))

    async def request(self, channel: str, msg_type: str, content: dict[str, Any] | None = None, *,
                      timeout: float) -> dict[str, Any]:
        """Send a request and return its reply, skipping replies to other requests.

        :class:`ChannelTimeout` when no reply arrives within ``timeout`` seconds.
        """
        msg = await self.send(channel, msg_type, content)
        msg_id = msg["header"]["msg_id"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            reply = await self.recv(channel, max(0.0, deadline - loop.time()))
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                return reply

    async def nudge(self, timeout: float) -> None:
        """Wait until iopub delivers, sending ``kernel_info_request`` on shell (at most every half second).

        A SUB socket receives nothing published before its subscription
        reached the kernel; Jupyter Server "nudges" the same way before
        relaying.  Every reply read from shell here is discarded, and iopub
        messages received meanwhile are lost to the caller: call this before
        relaying.  :class:`ChannelTimeout` after ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        wait = FIRST_NUDGE_WAIT
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ChannelTimeout(f"iopub of kernel {self.connection.kernel_id} silent for {timeout} s")
            await self.send("shell", "kernel_info_request")
            try:
                await self.recv_raw("iopub", min(wait, remaining))
            except ChannelTimeout:
                wait = min(wait * 2, NUDGE_INTERVAL)
                continue
            await self._drain("shell")
            return

    async def _drain(self, channel: str) -> None:
        sock = self._sockets[channel]
        while await sock.poll(0):
            await sock.recv_multipart()
