"""The launch's readiness check: one ``kernel_info_request`` on shell, done once the kernel's reply comes.

A ROUTER socket bound here stands for the kernel's shell; it answers as a kernel would, and as
something else on that port might.  The check's socket stays connected for the pod's first
websocket client, which takes it (and its identity) from the pod's iopub feed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zmq
import zmq.asyncio
from jupyter_client.session import Session

import gateway.kernels.iopub as iopub
from gateway.http.podlink import PodLink
from gateway.http.wsprotocol import LegacyCodec
from gateway.kernels.channels import ChannelTimeout, gateway_signer, kernel_answers
from gateway.kernels.iopub import IopubFeed
from gateway.kernels.kernel import Kernel
from gateway.kernels.zmqreader import CallbackSocket
from gateway.provisioner.connection import ConnectionInfo
from gateway.provisioner.model import LaunchRequest
from gateway.provisioner.spec import KernelSpecInfo

KEY = "a-kernel-key-of-some-length"


@pytest.fixture
async def shell() -> AsyncIterator[tuple[zmq.asyncio.Socket, ConnectionInfo]]:
    router = zmq.asyncio.Context.instance().socket(zmq.ROUTER)
    router.linger = 0
    port = router.bind_to_random_port("tcp://127.0.0.1")
    connection = ConnectionInfo(ip="127.0.0.1", shell_port=port, iopub_port=1, stdin_port=2, control_port=3,
                                hb_port=4, key=KEY, kernel_id=str(uuid.uuid4()))
    yield router, connection
    router.close(linger=0)


async def answer_with(router: zmq.asyncio.Socket, *replies: str) -> list[bytes]:
    """Answer the check's request with ``replies``: ``other`` (to another request), ``forged`` (another key),
    ``garbage`` (not a Jupyter message), ``reply`` (the kernel's own)."""
    kernel = Session(key=KEY.encode(), username="kernel")
    identities, parts = kernel.feed_identities(await asyncio.wait_for(router.recv_multipart(), 10))
    request = kernel.deserialize(parts)
    assert request["header"]["msg_type"] == "kernel_info_request"
    for reply in replies:
        if reply == "other":
            kernel.send(router, "kernel_info_reply", {}, parent={"msg_id": "another request"}, ident=identities)
        elif reply == "forged":
            Session(key=b"not the kernel's key", username="intruder").send(
                router, "kernel_info_reply", {}, parent=request["header"], ident=identities)
        elif reply == "garbage":
            await router.send_multipart([*identities, b"not a jupyter message"])
        else:
            kernel.send(router, "kernel_info_reply", {"status": "ok"}, parent=request["header"], ident=identities)
    return identities


async def test_the_signed_reply_to_its_request_ends_the_check(
        shell: tuple[zmq.asyncio.Socket, ConnectionInfo]) -> None:
    router, connection = shell
    check = asyncio.ensure_future(kernel_answers(connection, gateway_signer(connection), timeout=30))
    await answer_with(router, "other", "garbage", "reply")
    (await asyncio.wait_for(check, 10)).close()


async def test_other_messages_are_passed_over_until_the_check_times_out(
        shell: tuple[zmq.asyncio.Socket, ConnectionInfo]) -> None:
    router, connection = shell
    check = asyncio.ensure_future(kernel_answers(connection, gateway_signer(connection), timeout=1))
    await answer_with(router, "other", "forged", "garbage")
    with pytest.raises(ChannelTimeout):
        await check


async def test_a_kernel_that_does_not_answer_times_the_check_out(
        shell: tuple[zmq.asyncio.Socket, ConnectionInfo]) -> None:
    _, connection = shell
    with pytest.raises(ChannelTimeout):
        await kernel_answers(connection, gateway_signer(connection), timeout=0.3)


async def kernel_message(router: zmq.asyncio.Socket) -> tuple[bytes, str]:
    """The identity a message came from to the kernel's shell, and its type."""
    identities, parts = Session(key=KEY.encode()).feed_identities(await asyncio.wait_for(router.recv_multipart(), 10))
    return identities[0], Session(key=KEY.encode()).deserialize(parts)["header"]["msg_type"]


async def checked(router: zmq.asyncio.Socket, connection: ConnectionInfo) -> tuple[CallbackSocket, bytes]:
    """A passed readiness check's socket, and the identity the kernel saw it ask from."""
    check = asyncio.ensure_future(kernel_answers(connection, gateway_signer(connection), timeout=30))
    identities = await answer_with(router, "reply")
    return await asyncio.wait_for(check, 10), identities[0]


def feed_keeping(connection: ConnectionInfo, shell: CallbackSocket) -> IopubFeed:
    spec = KernelSpecInfo(name="python_kubernetes", language="python", image="i", resource_dir=Path("/nonexistent"))
    kernel = Kernel(LaunchRequest(kernel_id=connection.kernel_id, username="alice", spec=spec))
    feed = IopubFeed(kernel, connection, shell=shell)
    feed.start()
    return feed


async def client_request(link: PodLink, msg_type: str) -> None:
    header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": "s", "username": "u", "version": "5.3"}
    await link.send(LegacyCodec().decode(json.dumps({"header": header, "parent_header": {}, "metadata": {},
                                                     "content": {}, "channel": "shell"})))


async def test_the_first_client_asks_on_the_checks_socket_and_a_second_on_its_own(
        shell: tuple[zmq.asyncio.Socket, ConnectionInfo]) -> None:
    router, connection = shell
    sock, checked_from = await checked(router, connection)
    feed = feed_keeping(connection, sock)
    first = PodLink(feed, LegacyCodec(), lambda payload, binary: None)
    second = PodLink(feed, LegacyCodec(), lambda payload, binary: None)
    try:
        await client_request(first, "execute_request")
        assert await kernel_message(router) == (checked_from, "execute_request")
        await client_request(second, "execute_request")
        other, _ = await kernel_message(router)
        assert other != checked_from
    finally:
        first.close()
        second.close()
        await feed.stop()
    assert sock.closed  # the first client's link closed it


async def test_a_socket_no_client_takes_is_closed_in_time_and_with_the_feed(
        shell: tuple[zmq.asyncio.Socket, ConnectionInfo], monkeypatch: pytest.MonkeyPatch) -> None:
    router, connection = shell
    kept, _ = await checked(router, connection)
    feed = feed_keeping(connection, kept)
    await feed.stop()
    assert kept.closed and feed.take_shell() is None

    monkeypatch.setattr(iopub, "KEPT_SHELL_SECONDS", 0.0)
    unclaimed, _ = await checked(router, connection)
    feed = feed_keeping(connection, unclaimed)
    try:
        for _ in range(100):  # the timer runs on one of the loop's next turns
            if unclaimed.closed:
                break
            await asyncio.sleep(0)
        assert unclaimed.closed and feed.take_shell() is None
    finally:
        await feed.stop()


async def test_a_check_that_fails_leaves_no_socket(shell: tuple[zmq.asyncio.Socket, ConnectionInfo],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _, connection = shell
    made: list[CallbackSocket] = []
    original = CallbackSocket.__init__

    def recording(self: CallbackSocket, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(CallbackSocket, "__init__", recording)
    with pytest.raises(ChannelTimeout):
        await kernel_answers(connection, gateway_signer(connection), timeout=0.2)
    assert len(made) == 1 and made[0].closed
