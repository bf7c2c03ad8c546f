"""The gateway's one iopub subscription to a kernel pod: what its clients and the kernel's activity get from it.

A PUB socket bound here stands for the kernel's iopub; the feed subscribes to it as it does to a pod's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zmq
import zmq.asyncio
from jupyter_client.session import Session

from gateway.kernels.iopub import IopubFeed
from gateway.kernels.kernel import BUSY, IDLE, Kernel
from gateway.provisioner.connection import ConnectionInfo
from gateway.provisioner.model import LaunchRequest, Placement, RunningKernel
from gateway.provisioner.spec import KernelSpecInfo

KEY = "feed-key"
SPEC = KernelSpecInfo(name="python_kubernetes", language="python", image="elyra/kernel-py:dev",
                      resource_dir=Path("/nonexistent"))


class Publisher:
    """The kernel's side: a bound PUB socket, and the kernel's session signing what it publishes."""

    def __init__(self) -> None:
        self.socket = zmq.asyncio.Context.instance().socket(zmq.PUB)
        self.port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.session = Session(key=KEY.encode())

    async def publish(self, msg_type: str, content: dict, *, parent_type: str | None = None,
                      session: Session | None = None) -> dict:
        signer = session or self.session
        parent = signer.msg(parent_type, {}) if parent_type else None
        msg = signer.msg(msg_type, content, parent=parent)
        await self.socket.send_multipart([b"kernel.iopub", *signer.serialize(msg)])
        return msg


@pytest.fixture
async def kernel_and_publisher() -> AsyncIterator[tuple[Kernel, Publisher, IopubFeed]]:
    publisher = Publisher()
    connection = ConnectionInfo(kernel_id=str(uuid.uuid4()), ip="127.0.0.1", shell_port=1, iopub_port=publisher.port,
                                stdin_port=3, control_port=4, hb_port=5, key=KEY)
    kernel = Kernel(LaunchRequest(kernel_id=connection.kernel_id, username="alice", spec=SPEC))
    kernel.launched(RunningKernel(Placement("ns", "default", owns_namespace=True, pod_name="p"), connection,
                                  pod_ip="127.0.0.1", pod_uid=str(uuid.uuid4())))
    feed = IopubFeed(kernel, connection)
    feed.start()
    try:
        yield kernel, publisher, feed
    finally:
        await feed.stop()
        publisher.socket.close(linger=0)


async def heard(publisher: Publisher, feed: IopubFeed) -> None:
    """Publish until the subscription has reached the publisher (as a client's nudge would)."""
    for _ in range(200):
        await publisher.publish("status", {"execution_state": "idle"}, parent_type="kernel_info_request")
        try:
            await asyncio.wait_for(feed.heard.wait(), 0.05)
            return
        except asyncio.TimeoutError:
            continue
    raise AssertionError("the feed never heard the publisher")


async def next_of(listener: asyncio.Queue[list[bytes]]) -> list[bytes]:
    return await asyncio.wait_for(listener.get(), 10)


async def test_every_listener_gets_each_message_and_the_kernel_its_state(
        kernel_and_publisher: tuple[Kernel, Publisher, IopubFeed]) -> None:
    kernel, publisher, feed = kernel_and_publisher
    await heard(publisher, feed)
    first: asyncio.Queue[list[bytes]] = asyncio.Queue()
    second: asyncio.Queue[list[bytes]] = asyncio.Queue()
    feed.listen(first.put_nowait)
    stop_second = feed.listen(second.put_nowait)
    busy = await publisher.publish("status", {"execution_state": "busy"}, parent_type="execute_request")
    parts = await next_of(first)
    assert kernel.execution_state == BUSY and busy["header"]["msg_id"].encode() in parts[0]
    assert await next_of(second) == parts
    stop_second()
    await publisher.publish("status", {"execution_state": "idle"}, parent_type="execute_request")
    await next_of(first)
    assert kernel.execution_state == IDLE and second.empty()  # a listener that left hears no more


async def test_a_message_the_kernel_did_not_sign_reaches_no_client_and_is_no_activity(
        kernel_and_publisher: tuple[Kernel, Publisher, IopubFeed]) -> None:
    kernel, publisher, feed = kernel_and_publisher
    await heard(publisher, feed)
    got: asyncio.Queue[list[bytes]] = asyncio.Queue()
    feed.listen(got.put_nowait)
    forger = Session(key=b"not-the-kernels-key")
    await publisher.publish("status", {"execution_state": "busy"}, parent_type="execute_request", session=forger)
    await publisher.publish("stream", {"name": "stdout", "text": "after"}, parent_type="execute_request")
    assert b'"stream"' in (await next_of(got))[0]  # the forged one before it was dropped
    assert kernel.execution_state == IDLE
