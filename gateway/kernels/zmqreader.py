"""A socket to a kernel's ZeroMQ port, spoken from the event loop and read by a callback: the gateway's long-lived readers.

The kernel's iopub feed (:mod:`gateway.kernels.iopub`), each websocket client's link
(:mod:`gateway.http.podlink`) and the launch's readiness check (:func:`~gateway.kernels.channels.kernel_answers`)
relay every message a socket receives for as long as it is open.  A :class:`CallbackSocket` speaks
ZeroMQ's wire protocol itself (:mod:`gateway.kernels.zmtp`) on an asyncio connection and hands each
message to one callback as its bytes arrive.  libzmq's sockets pass every message through its own
I/O thread (a thread hop and a wake-up each way) and pyzmq's asyncio sockets give each one a future
and a task step; a kernel start's few messages cost the gateway more there than the start's
Kubernetes calls.  The kernel side is unchanged: its ROUTERs and PUB are libzmq's.

What the gateway relied on libzmq for, it keeps: a socket connects in the background and sends
queue until it is connected (up to :data:`QUEUE_LIMIT` messages, then a send waits); a lost or
refused connection is tried again after a jittered back-off, a SUB subscribing again; a message's
parts arrive together, in order; closing drops what is unsent.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Sequence
from typing import Literal, cast

from gateway.aio import Backoff

from . import zmtp

log = logging.getLogger("gateway.kernels.zmqreader")

QUEUE_LIMIT = 1000
"""Messages a socket keeps while it is not connected (libzmq's default high-water mark); a send beyond waits."""
CONNECT_SECONDS = 10.0
"""Longest wait for a TCP connection and the peer's handshake, before trying again."""
RETRY_FIRST, RETRY_CAP = 0.1, 5.0
"""A refused or lost connection is tried again after 0.1 s (libzmq's reconnect interval), then after a
doubling pause of up to 5 s: a gateway following thousands of kernels whose pods are unreachable
does not knock on each ten times a second.  The launch's readiness check keeps to 0.1 s (its
``retry_cap``) until the kernel first answers: Enterprise Gateway's launchers (and ours when the
kernel is a child process) report the ports while the kernel still imports, and the check connects
at once."""

Receiver = Callable[[list[bytes]], None]
"""Takes one received message's frames, as they came."""
SocketType = Literal["DEALER", "SUB"]


def _wake(waiter: asyncio.Future[None] | None) -> None:
    """Let whoever awaits ``waiter`` (a send's or :meth:`CallbackSocket.wait_open`'s wake-up) look again."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class SocketClosed(ConnectionError):
    """A send on a socket that is closed, or was closed while the send waited."""


class Link(enum.Enum):
    """Where a :class:`CallbackSocket`'s connection to the kernel is."""

    CONNECTING = "connecting"  # the TCP connection or the handshake is under way
    WAITING = "waiting to connect again"  # after a refused, failed or lost connection
    OPEN = "open"  # handshake done: messages go both ways
    CLOSED = "closed"  # for good: close() was called


class CallbackSocket:
    """One socket to a kernel's port, its messages handed to ``receive`` as they arrive.

    Made (on the event loop) by the feed, link or check that owns it: it begins connecting at once.
    The owner calls :meth:`start` to be handed messages (those that came before first) and
    :meth:`close` when done; ``receive`` must not raise (what it raises is logged).
    """

    def __init__(self, socket_type: SocketType, address: str, receive: Receiver, *, what: str,
                 identity: bytes | None = None, subscribe: bool = False, queue_limit: int = QUEUE_LIMIT,
                 retry_cap: float = RETRY_CAP) -> None:
        self._host, self._port = tcp_endpoint(address)
        self._family, self._sockaddr = _socket_address(self._host, self._port)
        self._type = socket_type.encode("ascii")
        self._receive = receive
        self._what = what
        self.identity = identity
        """The identity it was given (a DEALER's, by which the kernel's ROUTER addresses it), if any."""
        self._subscribe = subscribe
        self._queue_limit = queue_limit
        self._loop = asyncio.get_running_loop()
        self.link = Link.CONNECTING
        self._reading = False
        self._connection: _Connection | None = None
        self._queued: deque[bytes] = deque()  # encoded messages sent while not open
        self._held: deque[list[bytes]] = deque()  # messages received while not reading
        self._writable: asyncio.Future[None] | None = None  # what sends wait on, when they must
        self._opening: asyncio.Future[None] | None = None  # what wait_open waits on
        self._backoff = Backoff(RETRY_FIRST, retry_cap)
        self._timer: asyncio.TimerHandle | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._dialing: socket.socket | None = None  # a connect under way, before its transport
        self.last_failure: str | None = None
        """Why the last connection failed, was refused or dropped (``None``: none has yet)."""
        self._connect()

    @property
    def closed(self) -> bool:
        return self.link is Link.CLOSED

    def condition(self) -> str:
        """Where its connection to the kernel stands, in words: for the error of a kernel that does not answer.

        Tells an operator which side to look at: a port that refuses or never answers the dial
        (no kernel listening, a network policy) or a kernel that took the connection.
        """
        if self.link is Link.OPEN:
            return "connected"
        if self.link is Link.CLOSED:
            return "closed"
        if self._connection is not None:
            return "connected, but the port has not answered the ZMTP handshake"
        if self.last_failure is not None:
            return f"not connected: {self.last_failure}"
        return "still connecting"

    def start(self) -> None:
        """Begin handing messages to ``receive``: those that came before at once (on the loop's next turn)."""
        if self.link is Link.CLOSED:
            return
        self._reading = True
        if self._held:
            self._loop.call_soon(self._hand_held)
        elif self._connection is not None:
            self._connection.resume()

    def pause(self) -> None:
        """Stop handing messages until :meth:`start` is called again; what arrives meanwhile is kept (and
        the connection stops reading once one message waits, so a busy kernel is held back, not buffered)."""
        self._reading = False

    def hand_over(self, receive: Receiver) -> None:
        """Stop reading, and hand what arrives once :meth:`start` is called again to ``receive`` instead.

        Called when the socket changes owner: the readiness check's shell DEALER, kept by the pod's
        :class:`~gateway.kernels.iopub.IopubFeed`, becomes the first websocket client's.
        """
        self.pause()
        self._receive = receive

    def close(self) -> None:
        """Close the connection (unsent messages are dropped) and stop trying; a send waiting fails."""
        if self.link is Link.CLOSED:
            return
        self.link = Link.CLOSED
        self._reading = False
        if self._timer is not None:
            self._timer.cancel()
        if self._connecting is not None:
            self._connecting.cancel()
        if self._dialing is not None:
            self._stop_dialing().close()
        if self._connection is not None:
            self._connection.abort()
            self._connection = None
        self._queued.clear()
        self._held.clear()
        _wake(self._writable)
        _wake(self._opening)

    async def wait_open(self) -> None:
        """Return once the handshake is done (at once if it is); :class:`SocketClosed` if the socket is closed first.

        Waits through refusals and reconnections, without a bound of its own: the caller bounds it.
        """
        while self.link is not Link.OPEN:
            if self.link is Link.CLOSED:
                raise SocketClosed(f"{self._what} is closed")
            if self._opening is None or self._opening.done():
                self._opening = self._loop.create_future()
            await asyncio.shield(self._opening)

    async def send(self, frames: Sequence[bytes]) -> None:
        """Send one message: written at once when the connection is open and the kernel keeps up, else
        queued (up to the limit) until it opens; waits while neither can take it.  :class:`SocketClosed`
        when the socket is (or gets) closed."""
        data = zmtp.encode(frames)
        while True:
            if self.link is Link.CLOSED:
                raise SocketClosed(f"{self._what} is closed")
            connection = self._connection
            if self.link is Link.OPEN and connection is not None and not connection.paused:
                connection.write(data)
                return
            if self.link is not Link.OPEN and len(self._queued) < self._queue_limit:
                self._queued.append(data)
                return
            if self._writable is None or self._writable.done():  # senders waiting share one wake-up
                self._writable = self._loop.create_future()
            await asyncio.shield(self._writable)

    # ------------------------------------------------------------------ called by the connection

    def _handshake(self) -> bytes:
        """What the socket writes once the peer's greeting is in: its ``READY`` and, a SUB, its subscription.

        A DEALER names itself (an empty identity lets the ROUTER choose one); a SUB has none.  The
        subscription goes out in the same write as the ``READY``, not once the kernel's ``READY`` has
        come back: an ipykernel 7 kernel (libzmq 4.3.5) started a moment before never acted on a
        subscription that reached it after the handshake, in a segment of its own, and its iopub sent
        the connection nothing, not even the ``iopub_welcome``; one that arrives with the ``READY`` is
        read as the XPUB takes the connection in.  The kernel sent its own ``READY`` as soon as it had
        our greeting, a round trip before ours arrives (libzmq's ``zmtp_engine_t::handshake`` asks to
        write once the greeting is in, and its next write is the ``READY``), so its handshake is done
        when it reads ours and the subscription after it goes to the socket.  Were ours to come
        first, libzmq would take the subscription for a second handshake command and drop the
        connection (``null_mechanism_t::process_handshake_command``), which is then dialled again.
        """
        identity = (self.identity or b"") if self._type == b"DEALER" else None
        ready = zmtp.ready(self._type, identity)
        return ready + zmtp.encode([zmtp.SUBSCRIBE_ALL]) if self._subscribe else ready

    def _opened(self, connection: _Connection) -> None:
        """The handshake is done (a SUB's subscription went with its ``READY``): send what queued meanwhile."""
        self.link = Link.OPEN
        self._backoff.reset()
        self._backoff.cap = RETRY_CAP
        while self._queued and not connection.paused:
            connection.write(self._queued.popleft())
        _wake(self._writable)
        _wake(self._opening)

    def _received(self, connection: _Connection, messages: list[list[bytes]]) -> None:
        for index, frames in enumerate(messages):
            if self.link is Link.CLOSED:
                return
            if not self._reading or self._held:  # kept, in order, until the owner reads again
                self._held.extend(messages[index:])
                connection.hold()
                return
            self._hand(frames)

    def _hand(self, frames: list[bytes]) -> None:
        try:
            self._receive(frames)
        except Exception:
            log.exception("a message of %s could not be handled", self._what)

    def _hand_held(self) -> None:
        while self._held and self._reading:
            self._hand(self._held.popleft())
        if not self._held and self._reading and self._connection is not None:
            self._connection.resume()

    def _lost(self, connection: _Connection | None, reason: str) -> None:
        """The connection failed, was refused or dropped (``None``: it was never made): try again after a
        pause, unless the socket is closed or this is an earlier connection's late report."""
        if connection is not None and connection is not self._connection:
            return
        self._connection = None
        if self.link is Link.CLOSED:
            return
        self.last_failure = reason
        pause = self._backoff.fail()
        log.debug("%s: %s; connecting again in %.2f s", self._what, reason, pause)
        self.link = Link.WAITING
        _wake(self._writable)  # a send waiting on the lost connection queues instead
        self._timer = self._loop.call_later(pause, self._connect)

    def _connect(self) -> None:
        """Dial the kernel, at once and each time the retry timer fires.

        An IP address (a pod's) is dialled here, without a task: a kernel whose launcher reported its
        ports before it listens refuses a few times first.  A host name is resolved by the loop, in a task.
        """
        self._timer = None
        self.link = Link.CONNECTING
        if self._sockaddr is None:
            self._connecting = self._loop.create_task(self._open_connection(None))
            return
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(self._sockaddr)
        except BlockingIOError:  # under way (a peer across a network): done once writable
            self._dialing = sock
            self._loop.add_writer(sock.fileno(), self._dialled)
            self._timer = self._loop.call_later(CONNECT_SECONDS, self._dial_timed_out)
            return
        except OSError as error:
            sock.close()
            self._not_connected(f"({error})")
            return
        self._connecting = self._loop.create_task(self._open_connection(sock))

    def _not_connected(self, why: str) -> None:
        """A dial failed: say so (the words a non-answering kernel's 504 quotes) and try again after a pause."""
        self._lost(None, f"could not connect to {self._host}:{self._port} {why}")

    def _dialled(self) -> None:
        sock = self._stop_dialing()
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            sock.close()
            self._not_connected(f"({os.strerror(error)})")
        else:
            self._connecting = self._loop.create_task(self._open_connection(sock))

    def _dial_timed_out(self) -> None:
        self._stop_dialing().close()
        self._not_connected(f"in {CONNECT_SECONDS} s")

    def _stop_dialing(self) -> socket.socket:
        sock, self._dialing = self._dialing, None
        assert sock is not None
        self._loop.remove_writer(sock.fileno())
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return sock

    async def _open_connection(self, sock: socket.socket | None) -> None:
        """The connection's transport, on a dialled socket (or dialling a host name itself); the
        handshake then runs in :class:`_Connection`'s callbacks."""
        connection = _Connection(self)
        try:
            if sock is None:
                async with asyncio.timeout(CONNECT_SECONDS):
                    await self._loop.create_connection(lambda: connection, self._host, self._port)
            else:  # connected already: no wait on the network
                await self._loop.create_connection(lambda: connection, sock=sock)
        except (OSError, TimeoutError) as error:
            self._connecting = None
            if sock is not None:
                sock.close()
            self._not_connected(f"({error})")
            return
        except asyncio.CancelledError:  # closed: a socket no transport took is this task's to close
            if sock is not None and not connection.made:
                sock.close()
            raise
        self._connecting = None


class _Connection(asyncio.Protocol):
    """One TCP connection of a :class:`CallbackSocket`: the greeting and handshake, then its messages."""

    def __init__(self, owner: CallbackSocket) -> None:
        self._owner = owner
        self._decoder = zmtp.Decoder(owner._type)
        self._transport: asyncio.Transport | None = None
        self.paused = False
        """The transport's buffer is past its high-water mark (the kernel does not keep up): sends wait."""
        self._holding = False
        self.deadline: asyncio.TimerHandle | None = None
        self._why_dropped: str | None = None  # when the gateway itself dropped it

    @property
    def made(self) -> bool:
        """Its transport exists (and owns the socket)."""
        return self._transport is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio's subclasses
        owner = self._owner
        if owner.link is Link.CLOSED:  # closed while connecting
            transport.abort()
            return
        owner._connection = self
        self.deadline = owner._loop.call_later(CONNECT_SECONDS, self.give_up)
        transport.write(zmtp.GREETING)

    def data_received(self, data: bytes) -> None:
        owner = self._owner
        stage = self._decoder.stage
        try:
            messages = self._decoder.feed(data)
        except zmtp.ProtocolError as error:
            log.warning("%s: %s", owner._what, error)
            self.abort()
            owner._lost(self, str(error))
            return
        if stage is zmtp.Stage.GREETING and self._decoder.stage is not zmtp.Stage.GREETING:
            self.write(owner._handshake())
        if stage is not zmtp.Stage.TRAFFIC and self._decoder.stage is zmtp.Stage.TRAFFIC:
            if self.deadline is not None:
                self.deadline.cancel()
            owner._opened(self)
        if messages:
            owner._received(self, messages)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self._owner._lost(self, self._why_dropped or f"the connection was lost ({exc or 'closed by the kernel'})")

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        owner = self._owner
        while owner._queued and not self.paused:
            self.write(owner._queued.popleft())
        _wake(owner._writable)

    def write(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    def hold(self) -> None:
        """Stop reading while a received message waits for its reader."""
        if not self._holding and self._transport is not None:
            self._holding = True
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._holding and self._transport is not None:
            self._holding = False
            self._transport.resume_reading()

    def give_up(self) -> None:
        """The handshake did not finish in time: drop the connection (the socket tries again)."""
        if self._decoder.stage is not zmtp.Stage.TRAFFIC:
            self._why_dropped = f"the port took the connection but no ZMTP handshake came in {CONNECT_SECONDS} s"
            self.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


def _socket_address(host: str, port: int) -> tuple[socket.AddressFamily, tuple[str, int] | tuple[str, int, int, int] | None]:
    """The family and address to dial ``host`` at when it is an IP address; ``None`` for a host name."""
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        return socket.AF_INET, None
    return (socket.AF_INET6, (host, port, 0, 0)) if version == 6 else (socket.AF_INET, (host, port))


def tcp_endpoint(address: str) -> tuple[str, int]:
    """``tcp://host:port`` (the host may be ``[v6]``) as ``(host, port)``; ``ValueError`` for anything else."""
    scheme, _, rest = address.partition("://")
    host, _, port = rest.rpartition(":")
    if scheme != "tcp" or not host or not port.isdigit():
        raise ValueError(f"not a TCP endpoint: {address!r}")
    return host.strip("[]"), int(port)
