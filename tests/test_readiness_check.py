"""The launch's readiness check: one ``kernel_info_request`` on shell, done once the kernel's reply comes.

A ROUTER socket bound here stands for the kernel's shell; it answers as a kernel would, and as
something else on that port might.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import zmq
import zmq.asyncio
from jupyter_client.session import Session

from gateway.kernels.channels import ChannelTimeout, gateway_signer, kernel_answers
from gateway.provisioner.connection import ConnectionInfo

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


async def answer_with(router: zmq.asyncio.Socket, *replies: str) -> None:
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


async def test_the_signed_reply_to_its_request_ends_the_check(
        shell: tuple[zmq.asyncio.Socket, ConnectionInfo]) -> None:
    router, connection = shell
    check = asyncio.ensure_future(kernel_answers(connection, gateway_signer(connection), timeout=30))
    await answer_with(router, "other", "garbage", "reply")
    await asyncio.wait_for(check, 10)


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
