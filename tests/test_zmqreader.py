"""A socket read by a callback from the event loop: what the iopub feed and websocket clients' links rely on.

A ROUTER socket bound here stands for a kernel's shell: it answers what the DEALER sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import zmq
import zmq.asyncio

from gateway.kernels.zmqreader import CallbackSocket


@pytest.fixture
async def kernel_side() -> AsyncIterator[tuple[zmq.asyncio.Socket, str]]:
    router = zmq.asyncio.Context.instance().socket(zmq.ROUTER)
    router.linger = 0
    port = router.bind_to_random_port("tcp://127.0.0.1")
    yield router, f"tcp://127.0.0.1:{port}"
    router.close(linger=0)


async def next_of(received: asyncio.Queue[list[bytes]]) -> list[bytes]:
    return await asyncio.wait_for(received.get(), 10)


async def test_replies_reach_the_callback_in_order_including_those_before_start(
        kernel_side: tuple[zmq.asyncio.Socket, str]) -> None:
    router, address = kernel_side
    received: asyncio.Queue[list[bytes]] = asyncio.Queue()
    dealer = CallbackSocket(zmq.DEALER, address, received.put_nowait, what="a test dealer", identity=b"client")
    try:
        await dealer.send([b"first"])
        identity, body = await asyncio.wait_for(router.recv_multipart(), 10)
        await router.send_multipart([identity, b"early reply"])  # before anyone reads the dealer
        await asyncio.sleep(0)
        dealer.start()
        assert await next_of(received) == [b"early reply"]
        for n in range(100):  # each send may take the descriptor's signal of the reply before it
            await dealer.send([b"ping", b"%d" % n, b""])  # a message's parts stay one message, in order
            identity, *parts = await asyncio.wait_for(router.recv_multipart(), 10)
            assert parts == [b"ping", b"%d" % n, b""]
            await router.send_multipart([identity, b"pong", *parts])
            assert await next_of(received) == [b"pong", b"ping", b"%d" % n, b""]
    finally:
        dealer.close()


async def test_a_send_at_the_high_water_mark_waits_until_the_peer_takes_messages(
        kernel_side: tuple[zmq.asyncio.Socket, str]) -> None:
    router, address = kernel_side
    dealer = CallbackSocket(zmq.DEALER, address, lambda _: None, what="a test dealer", identity=b"client")
    dealer._socket.sndhwm = 1  # noqa: SLF001 - a queue of one, filled at once
    try:
        dealer.start()
        sends = asyncio.ensure_future(asyncio.gather(*(dealer.send([b"%d" % n, b"tail"]) for n in range(500))))
        got = []
        while len(got) < 500:
            _, body, tail = await asyncio.wait_for(router.recv_multipart(), 10)
            assert tail == b"tail"
            got.append(int(body))
        await asyncio.wait_for(sends, 10)
        assert sorted(got) == list(range(500))
    finally:
        dealer.close()


async def test_closing_fails_a_send_waiting_at_the_high_water_mark() -> None:
    dealer = CallbackSocket(zmq.DEALER, "tcp://127.0.0.1:9", lambda _: None, what="a test dealer")
    dealer._socket.sndhwm = 1  # noqa: SLF001
    dealer.start()
    waiting = None
    for n in range(10_000):  # nothing listens: the queue fills and a send waits
        waiting = asyncio.ensure_future(dealer.send([b"%d" % n]))
        await asyncio.sleep(0)
        if not waiting.done():
            break
    assert waiting is not None and not waiting.done()
    dealer.close()
    with pytest.raises(zmq.ZMQError):
        await asyncio.wait_for(waiting, 10)
