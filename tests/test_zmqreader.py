"""A socket to a kernel's port, spoken from the event loop: what the iopub feed and websocket clients' links rely on.

The kernel's side is libzmq's, as in a kernel: a ROUTER bound here stands for its shell (it
answers what the DEALER sends), a PUB for its iopub.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import zmq
import zmq.asyncio

from gateway.kernels import zmqreader, zmtp
from gateway.kernels.zmqreader import CallbackSocket, Link, SocketClosed


@pytest.fixture
async def kernel_side() -> AsyncIterator[tuple[zmq.asyncio.Socket, str]]:
    router = zmq.asyncio.Context.instance().socket(zmq.ROUTER)
    router.linger = 0
    port = router.bind_to_random_port("tcp://127.0.0.1")
    yield router, f"tcp://127.0.0.1:{port}"
    router.close(linger=0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def next_of(received: asyncio.Queue[list[bytes]]) -> list[bytes]:
    return await asyncio.wait_for(received.get(), 10)


async def test_replies_reach_the_callback_in_order_including_those_before_start(
        kernel_side: tuple[zmq.asyncio.Socket, str]) -> None:
    router, address = kernel_side
    received: asyncio.Queue[list[bytes]] = asyncio.Queue()
    dealer = CallbackSocket("DEALER", address, received.put_nowait, what="a test dealer", identity=b"client")
    try:
        await dealer.send([b"first"])
        identity, body = await asyncio.wait_for(router.recv_multipart(), 10)
        assert identity == b"client"  # the kernel addresses the client by the identity it gave
        await router.send_multipart([identity, b"early reply"])  # before anyone reads the dealer
        await router.send_multipart([identity, b"second early reply"])
        await asyncio.sleep(0.2)
        dealer.start()
        assert await next_of(received) == [b"early reply"]
        assert await next_of(received) == [b"second early reply"]
        for n in range(100):
            await dealer.send([b"ping", b"%d" % n, b""])  # a message's parts stay one message, in order
            identity, *parts = await asyncio.wait_for(router.recv_multipart(), 10)
            assert parts == [b"ping", b"%d" % n, b""]
            await router.send_multipart([identity, b"pong", *parts])
            assert await next_of(received) == [b"pong", b"ping", b"%d" % n, b""]
    finally:
        dealer.close()


async def test_parts_of_every_size_cross_both_ways(kernel_side: tuple[zmq.asyncio.Socket, str]) -> None:
    router, address = kernel_side
    received: asyncio.Queue[list[bytes]] = asyncio.Queue()
    dealer = CallbackSocket("DEALER", address, received.put_nowait, what="a test dealer", identity=b"client")
    dealer.start()
    try:
        parts = [b"", b"x" * 255, b"y" * 256, bytes(range(256)) * 4096, b"\x00\x01"]  # short, long and 1 MiB frames
        await dealer.send(parts)
        identity, *got = await asyncio.wait_for(router.recv_multipart(), 10)
        assert got == parts
        await router.send_multipart([identity, *reversed(parts)])
        assert await next_of(received) == list(reversed(parts))
    finally:
        dealer.close()


@asynccontextmanager
async def before_the_kernel_listens(identity: bytes) -> AsyncIterator[tuple[CallbackSocket, zmq.asyncio.Socket, str]]:
    """A DEALER dialling a port nobody listens on yet, the kernel's ROUTER to bind there, and the address."""
    address = f"tcp://127.0.0.1:{free_port()}"
    dealer = CallbackSocket("DEALER", address, lambda _: None, what="a test dealer", identity=identity)
    router = zmq.asyncio.Context.instance().socket(zmq.ROUTER)
    router.linger = 0
    try:
        yield dealer, router, address
    finally:
        dealer.close()
        router.close(linger=0)


async def test_what_is_sent_before_the_kernel_listens_reaches_it_once_it_does() -> None:
    async with before_the_kernel_listens(b"early") as (dealer, router, address):
        await dealer.send([b"sent while refused"])
        await asyncio.sleep(0.3)  # refused at least once: the socket is waiting to try again
        assert dealer.link is not Link.OPEN
        router.bind(address)
        assert await asyncio.wait_for(router.recv_multipart(), 10) == [b"early", b"sent while refused"]
        assert dealer.link is Link.OPEN


async def test_waiting_for_the_handshake_returns_once_the_kernel_listens_and_fails_once_closed() -> None:
    async with before_the_kernel_listens(b"waits") as (dealer, router, address):
        waiting = asyncio.ensure_future(dealer.wait_open())
        await asyncio.sleep(0.3)  # refused at least once meanwhile
        assert not waiting.done()
        router.bind(address)
        await asyncio.wait_for(waiting, 10)
        assert dealer.link is Link.OPEN
        await dealer.wait_open()  # at once
        dealer.close()
        with pytest.raises(SocketClosed):
            await dealer.wait_open()

    never = CallbackSocket("DEALER", f"tcp://127.0.0.1:{free_port()}", lambda _: None, what="a dealer closed early")
    waiting = asyncio.ensure_future(never.wait_open())
    await asyncio.sleep(0)
    never.close()
    with pytest.raises(SocketClosed):
        await asyncio.wait_for(waiting, 10)


async def bound(socket_type: int, port: int) -> zmq.asyncio.Socket:
    """A socket bound to ``port``, once the one bound there before has let it go (libzmq closes in its own thread)."""
    sock = zmq.asyncio.Context.instance().socket(socket_type)
    sock.linger = 0
    for _ in range(100):
        try:
            sock.bind(f"tcp://127.0.0.1:{port}")
            return sock
        except zmq.ZMQError:
            await asyncio.sleep(0.05)
    sock.close(linger=0)
    raise AssertionError(f"port {port} stayed in use")


async def test_a_subscription_lost_with_its_connection_is_made_again() -> None:
    port = free_port()
    received: asyncio.Queue[list[bytes]] = asyncio.Queue()
    sub = CallbackSocket("SUB", f"tcp://127.0.0.1:{port}", received.put_nowait, what="a test feed", subscribe=True)
    sub.start()
    try:
        for round_ in range(2):  # the kernel's PUB goes away and a new one binds the same port
            pub = await bound(zmq.PUB, port)
            try:
                got: list[bytes] | None = None
                async with asyncio.timeout(20):
                    while got is None:  # a subscription takes a moment to reach the PUB: publish until one arrives
                        await pub.send_multipart([b"round", b"%d" % round_])
                        try:
                            got = await asyncio.wait_for(received.get(), 0.05)
                        except TimeoutError:
                            continue
                assert got == [b"round", b"%d" % round_]
            finally:
                pub.close(linger=0)
    finally:
        sub.close()


async def test_a_publisher_that_reads_subscriptions_only_with_the_handshake_still_hears_the_sub() -> None:
    """A SUB's subscription reaches the kernel with its ``READY``, in one write.

    An ipykernel 7 kernel started a moment before (libzmq 4.3.5's XPUB) ignored a subscription that
    came in a segment of its own after the handshake, and its iopub then sent the feed nothing.  This
    publisher stands for it: it reads once after the greeting and takes a subscription only from that
    read, then publishes one message to a subscriber.
    """
    subscribed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def publish(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(zmtp.GREETING + zmtp.ready(b"XPUB", None))
        await reader.readexactly(zmtp.GREETING_SIZE)
        ready = zmtp.ready(b"SUB", None)
        handshake = await reader.read(1 << 16)
        subscribed.set_result(handshake == ready + zmtp.encode([zmtp.SUBSCRIBE_ALL]))
        if subscribed.result():
            writer.write(zmtp.encode([b"topic", b"hello"]))
        await reader.read()
        writer.close()

    server = await asyncio.start_server(publish, "127.0.0.1", 0)
    received: asyncio.Queue[list[bytes]] = asyncio.Queue()
    sub = CallbackSocket("SUB", f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}", received.put_nowait,
                         what="a test feed", subscribe=True)
    sub.start()
    try:
        assert await asyncio.wait_for(subscribed, 10)
        assert await next_of(received) == [b"topic", b"hello"]
    finally:
        sub.close()
        server.close()


async def test_a_send_waits_while_the_kernel_does_not_read_and_completes_when_it_does() -> None:
    router = zmq.asyncio.Context.instance().socket(zmq.ROUTER)
    router.linger = 0
    router.rcvhwm = 1  # before binding: a listener's connections take the options it had then
    address = f"tcp://127.0.0.1:{router.bind_to_random_port('tcp://127.0.0.1')}"
    dealer = CallbackSocket("DEALER", address, lambda _: None, what="a test dealer", identity=b"client")
    dealer.start()
    big = b"z" * (1 << 20)
    try:
        await dealer.send([b"hello"])
        assert (await asyncio.wait_for(router.recv_multipart(), 10))[1:] == [b"hello"]  # connected
        sends = [asyncio.ensure_future(dealer.send([b"%d" % n, big])) for n in range(64)]
        await asyncio.sleep(0.2)  # the kernel reads nothing: the socket's buffers fill, and the sends wait
        assert not sends[-1].done()
        got = []
        while len(got) < 64:
            _, number, body = await asyncio.wait_for(router.recv_multipart(), 10)
            assert body == big
            got.append(int(number))
        await asyncio.wait_for(asyncio.gather(*sends), 10)
        assert got == list(range(64))  # in the order sent
    finally:
        dealer.close()
        router.close(linger=0)


async def test_closing_fails_a_send_waiting_at_the_queue_limit() -> None:
    dealer = CallbackSocket("DEALER", f"tcp://127.0.0.1:{free_port()}", lambda _: None, what="a test dealer",
                            queue_limit=1)
    await dealer.send([b"queued"])  # nothing listens: queued
    waiting = asyncio.ensure_future(dealer.send([b"over the limit"]))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    dealer.close()
    with pytest.raises(SocketClosed):
        await asyncio.wait_for(waiting, 10)
    with pytest.raises(SocketClosed):
        await dealer.send([b"after close"])


async def serve_once(answer: bytes) -> tuple[asyncio.AbstractServer, int, asyncio.Queue[bytes]]:
    """A TCP server that writes ``answer`` to whoever connects and keeps what it is sent."""
    heard: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answer)
        heard.put_nowait(await reader.read(1 << 16))
        await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], heard


@pytest.mark.parametrize(("peer", "why"), [
    (zmtp.GREETING.replace(b"NULL", b"CURV"), "mechanism"),  # a kernel asking for encryption the gateway lacks
    (zmtp.GREETING + zmtp.ready(b"PUB", None), "cannot talk to a PUB"),  # a DEALER connected to an iopub port
    (b"HTTP/1.1 400 Bad Request\r\n\r\n" + bytes(64), "signature"),  # not ZeroMQ at all
])
async def test_a_peer_that_is_not_a_kernel_port_is_refused(peer: bytes, why: str,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    server, port, heard = await serve_once(peer)
    received: list[list[bytes]] = []
    dealer = CallbackSocket("DEALER", f"tcp://127.0.0.1:{port}", received.append, what="a test dealer")
    dealer.start()
    try:
        assert (await asyncio.wait_for(heard.get(), 10)).startswith(zmtp.GREETING)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if why in caplog.text:
                break
        assert why in caplog.text
        assert dealer.link is not Link.OPEN and not received
    finally:
        dealer.close()
        server.close()


def test_the_decoder_reads_the_same_messages_however_the_bytes_are_cut() -> None:
    messages = [[b"a"], [b"", b"b" * 300], [b"c" * 70_000, b"d", b""]]
    stream = (zmtp.GREETING + zmtp.ready(b"ROUTER", b"") + b"".join(zmtp.encode(m) for m in messages)
              + zmtp.frame(b"\x04PING\x00\x00", zmtp.COMMAND))  # a 3.1 command mid-stream is passed over
    for cut in (1, 2, 7, 9, 64, 1000, len(stream)):
        decoder = zmtp.Decoder(b"DEALER")
        got = []
        for start in range(0, len(stream), cut):
            got.extend(decoder.feed(stream[start:start + cut]))
        assert got == messages
        assert decoder.stage is zmtp.Stage.TRAFFIC


def test_a_message_before_the_handshake_is_a_protocol_error() -> None:
    decoder = zmtp.Decoder(b"DEALER")
    with pytest.raises(zmtp.ProtocolError):
        decoder.feed(zmtp.GREETING + zmtp.encode([b"too soon"]))


def test_only_tcp_endpoints_are_spoken_to() -> None:
    assert zmqreader.tcp_endpoint("tcp://10.0.0.7:5555") == ("10.0.0.7", 5555)
    assert zmqreader.tcp_endpoint("tcp://[fd00::7]:5555") == ("fd00::7", 5555)
    for address in ("ipc:///tmp/x", "tcp://10.0.0.7", "tcp://:5555", "tcp://h:port"):
        with pytest.raises(ValueError):
            zmqreader.tcp_endpoint(address)


class _RecordedPauses:
    """The socket's loop, but each retry pause it asks for is recorded and cut to nothing."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wanted: int) -> None:
        self._loop = loop
        self.pauses: list[float] = []
        self._wanted = wanted
        self.enough = asyncio.Event()

    def call_later(self, delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        if callback.__name__ == "_connect":
            self.pauses.append(delay)
            delay = 0
            if len(self.pauses) >= self._wanted:
                self.enough.set()
        return self._loop.call_later(delay, callback, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)


@pytest.mark.parametrize(("retry_cap", "longest"), [(zmqreader.RETRY_CAP, zmqreader.RETRY_CAP),
                                                    (zmqreader.RETRY_FIRST, zmqreader.RETRY_FIRST)])
async def test_a_kernel_that_refuses_is_knocked_on_less_and_less_often_unless_it_is_starting(
        retry_cap: float, longest: float) -> None:
    """A gateway following thousands of kernels whose pods are unreachable backs off to one attempt
    per 5 s each; the launch's readiness check keeps knocking every 0.1 s (the kernel is importing)."""
    sock = CallbackSocket("DEALER", f"tcp://127.0.0.1:{free_port()}", lambda _: None, what="a test dealer",
                          retry_cap=retry_cap)
    loop = sock._loop = _RecordedPauses(asyncio.get_running_loop(), 12)  # type: ignore[assignment]
    try:
        await asyncio.wait_for(loop.enough.wait(), 10)
    finally:
        sock.close()
    assert all(pause <= longest for pause in loop.pauses)
    assert max(loop.pauses[-3:]) > longest / 2  # it reached its longest pause (each is drawn from [cap/2, cap])
    assert min(loop.pauses[:2]) <= zmqreader.RETRY_FIRST  # and began at libzmq's 0.1 s
