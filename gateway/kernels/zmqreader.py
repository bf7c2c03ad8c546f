"""A ZeroMQ socket read from the event loop by a callback on its descriptor, for the gateway's long-lived readers.

The kernel's iopub feed (:mod:`gateway.kernels.iopub`) and each websocket client's link
(:mod:`gateway.http.podlink`) relay every message a socket receives for as long as it is
open.  ``pyzmq``'s asyncio sockets give each received message a future, a task step and
their bookkeeping; a :class:`CallbackSocket` hands it to one callback instead.  ZeroMQ's file
descriptor only signals that the socket's state may have changed (edge-triggered), and a
send can take that signal too: the socket is read until ``EVENTS`` says nothing is left,
after it becomes readable and after each send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import cast

import zmq
import zmq.asyncio

log = logging.getLogger("gateway.kernels.zmqreader")

_EVENTS, _POLLIN, _POLLOUT, _NOBLOCK = int(zmq.EVENTS), int(zmq.POLLIN), int(zmq.POLLOUT), int(zmq.NOBLOCK)
_RCVMORE, _SNDMORE = int(zmq.RCVMORE), int(zmq.SNDMORE)
"""Plain integers: pyzmq's flags are ``enum`` members, and each operation on one costs a few microseconds."""
_send, _recv, _get = zmq.backend.Socket.send, zmq.backend.Socket.recv, zmq.backend.Socket.get
"""pyzmq's own socket operations, under its ``send_multipart``/``recv_multipart``: those turn the flags of
every part into ``enum`` members, half the time of a message's round through a socket."""

MAX_PER_WAKE = 64
"""Messages read in one go before the socket lets the event loop run others (then it reads on)."""

Receiver = Callable[[list[bytes]], None]
"""Takes one received message's frames, as they came."""


class CallbackSocket:
    """One connected socket of the shared context, its messages handed to ``receive`` as they arrive.

    Made by the feed or the link that owns it, which calls :meth:`start` on the event loop and
    :meth:`close` when done; ``receive`` must not raise (what it raises is logged).
    """

    def __init__(self, socket_type: int, address: str, receive: Receiver, *, what: str,
                 identity: bytes | None = None, subscribe: bool = False) -> None:
        self._receive = receive
        self._what = what
        self.identity = identity
        """The identity it was given (a DEALER's, by which the kernel's ROUTER addresses it), if any."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writable: asyncio.Future[None] | None = None
        self._socket = zmq.Socket(zmq.asyncio.Context.instance(), socket_type)
        try:
            self._socket.linger = 0
            if identity is not None:
                self._socket.identity = identity
            if subscribe:
                self._socket.setsockopt(zmq.SUBSCRIBE, b"")
            self._socket.connect(address)
        except BaseException:
            self._socket.close(linger=0)
            raise

    @property
    def closed(self) -> bool:
        return bool(self._socket.closed)

    def start(self) -> None:
        """Begin handing messages to ``receive`` (what arrived before is read at once)."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._socket.FD, self._ready)
        self._loop.call_soon(self._ready)

    def pause(self) -> None:
        """Stop reading until :meth:`start` is called again; what arrives meanwhile waits in ZeroMQ's queue."""
        if self._loop is not None and not self._socket.closed:
            self._loop.remove_reader(self._socket.FD)
        self._loop = None

    def hand_over(self, receive: Receiver) -> None:
        """Stop reading, and hand what arrives once :meth:`start` is called again to ``receive`` instead.

        Called when the socket changes owner: the readiness check's shell DEALER, kept by the pod's
        :class:`~gateway.kernels.iopub.IopubFeed`, becomes the first websocket client's.
        """
        self.pause()
        self._receive = receive

    def close(self) -> None:
        """Stop reading and close the socket (unsent messages are dropped); a send waiting fails."""
        if self._socket.closed:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._socket.FD)
        self._socket.close(linger=0)
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(zmq.ZMQError(zmq.ENOTSOCK, f"{self._what} was closed"))

    async def send(self, frames: Sequence[bytes]) -> None:
        """Send one message; waits only while ZeroMQ's queue to the peer is full (its high-water mark)."""
        while True:
            try:
                _send_multipart(self._socket, frames)
                break
            except zmq.Again:
                if self._writable is None or self._writable.done():  # senders waiting share one wake-up
                    self._writable = asyncio.get_running_loop().create_future()
                    self._ready()
                await asyncio.shield(self._writable)
        if self._loop is not None:
            self._loop.call_soon(self._ready)  # the send may have taken the descriptor's signal of a message

    def _ready(self) -> None:
        sock = self._socket
        for _ in range(MAX_PER_WAKE):
            if sock.closed:
                return
            try:
                events = cast(int, _get(sock, _EVENTS))
                if events & _POLLOUT and self._writable is not None and not self._writable.done():
                    self._writable.set_result(None)
                if not events & _POLLIN or self._loop is None:  # not reading (before start, or handed over)
                    return
                frames = _recv_multipart(sock)
            except zmq.Again:
                return
            except zmq.ZMQError as error:
                log.warning("%s failed: %s", self._what, error)
                return
            try:
                self._receive(frames)
            except Exception:
                log.exception("a message of %s could not be handled", self._what)
        if self._loop is not None:
            self._loop.call_soon(self._ready)  # more may wait: after the others' turn


def _send_multipart(sock: zmq.Socket, frames: Sequence[bytes]) -> None:
    """Send one message without blocking (``zmq.Again`` when the peer's queue is full: then nothing was sent,
    since ZeroMQ takes the other parts of a message whose first part it took)."""
    last = len(frames) - 1
    for index, frame in enumerate(frames):
        _send(sock, frame, _NOBLOCK | _SNDMORE if index < last else _NOBLOCK)


def _recv_multipart(sock: zmq.Socket) -> list[bytes]:
    """The next message's parts (``zmq.Again`` when none waits; a message's parts arrive together)."""
    frames = [_recv(sock, _NOBLOCK)]
    while _get(sock, _RCVMORE):
        frames.append(_recv(sock, _NOBLOCK))
    return frames
