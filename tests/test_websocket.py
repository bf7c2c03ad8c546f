"""Kernel channels over the gateway's websocket, with real kernels on the embedded simulated cluster.

Client frames are built and read with Jupyter Server's own encoders
(``serialize_binary_message``, ``serialize_msg_to_ws_v1`` and their inverses),
so both framings are checked against the reference implementation.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tests.gatewayharness import eventually
from tests.httpharness import V1, WAIT, execute, kernel_info, read, request, running_gateway, send

pytestmark = pytest.mark.slow

ECHO_COMM = """
def _echo_target(comm, open_msg):
    @comm.on_msg
    def _echo(msg):
        comm.send({"echoed": len(msg["buffers"])}, buffers=[bytes(b)[::-1] for b in msg["buffers"]])
get_ipython().kernel.comm_manager.register_target("echo", _echo_target)
"""


@pytest.mark.parametrize("v1", [False, True], ids=["legacy", "v1"])
async def test_execute_one_plus_one(tmp_path: Path, v1: bool) -> None:
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        ws = await gw.websocket(kernel["id"], v1=v1)
        assert ws.selected_subprotocol == (V1 if v1 else None)
        done = await execute(ws, "1+1")
        assert done.reply["status"] == "ok"
        assert done.results == ["2"]
        channels = {m["channel"] for m in done.seen}
        assert channels == {"shell", "iopub"}
        ws.close()


@pytest.mark.parametrize("v1", [False, True], ids=["legacy", "v1"])
async def test_messages_with_buffers_both_ways(tmp_path: Path, v1: bool) -> None:
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        ws = await gw.websocket(kernel["id"], v1=v1)
        assert (await execute(ws, ECHO_COMM)).reply["status"] == "ok"
        comm_id = uuid.uuid4().hex
        send(ws, request("comm_open", {"comm_id": comm_id, "target_name": "echo", "data": {}}))
        message = request("comm_msg", {"comm_id": comm_id, "data": {}})
        message["buffers"] = [b"\x00\x01\x02binary", b"second buffer \xff"]
        send(ws, message)
        while True:
            got = await read(ws)
            if got["msg_type"] == "comm_msg" and got["content"]["comm_id"] == comm_id:
                break
        assert got["channel"] == "iopub"
        assert got["content"]["data"] == {"echoed": 2}
        assert [bytes(b) for b in got["buffers"]] == [b"yranib\x02\x01\x00", b"\xff reffub dnoces"]
        ws.close()


async def test_a_message_without_channel_goes_to_shell(tmp_path: Path) -> None:
    import json

    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        ws = await gw.websocket(kernel["id"])
        msg = request("kernel_info_request", {})
        ws.write_message(json.dumps(msg))  # no "channel"
        while True:
            got = await read(ws)
            if got["parent_header"].get("msg_id") == msg["header"]["msg_id"] and got["channel"] == "shell":
                break
        assert got["msg_type"] == "kernel_info_reply"
        assert got["content"]["language_info"]["name"] == "python"
        ws.close()


async def test_two_clients_get_their_own_replies_and_both_see_iopub(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        first = await gw.websocket(kernel["id"])
        second = await gw.websocket(kernel["id"], v1=True)
        assert (await kernel_info(second))["status"] == "ok"
        mine = await execute(first, "shared = 20; shared + 1")
        assert mine.results == ["21"]
        first_request = mine.msg_id

        theirs = await execute(second, "shared * 2")
        assert theirs.results == ["40"]
        seen_by_second = [(m["channel"], m["msg_type"]) for m in theirs.seen
                          if m["parent_header"].get("msg_id") == first_request]
        assert ("iopub", "execute_result") in seen_by_second, "the second client sees the first one's output"
        assert not [s for s in seen_by_second if s[0] == "shell"], "the first client's reply went to the second"

        status, model, _ = await gw.call("GET", f"/api/kernels/{kernel['id']}")
        assert model["connections"] == 2
        first.close()
        second.close()


async def test_state_survives_a_reconnect(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        ws = await gw.websocket(kernel["id"])
        assert (await execute(ws, "x = 41")).reply["status"] == "ok"
        ws.close()
        ws = await gw.websocket(kernel["id"], v1=True)
        assert (await execute(ws, "x + 1")).results == ["42"]
        ws.close()


async def test_state_is_gone_after_a_restart_and_the_websocket_stays_open(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        ws = await gw.websocket(kernel["id"])
        assert (await execute(ws, "x = 41")).reply["status"] == "ok"
        restart = asyncio.create_task(gw.call("POST", f"/api/kernels/{kernel['id']}/restart"))
        while True:
            got = await read(ws)
            if got["msg_type"] == "status":
                break
        # the new kernel starting; never "restarting", which tells a client its kernel died (the client asked)
        assert got["content"]["execution_state"] == "starting"

        # sent while the pod is replaced: held by the gateway, then run by the new kernel
        done = await execute(ws, "x")
        assert done.reply["status"] == "error" and done.reply["ename"] == "NameError"
        status, model, _ = await asyncio.wait_for(restart, WAIT)
        assert status == 200 and model["id"] == kernel["id"]
        assert (await execute(ws, "1+1")).results == ["2"]
        ws.close()


async def test_interrupt_stops_a_long_execution(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        ws = await gw.websocket(kernel["id"])
        sleeping = asyncio.Event()  # set once the cell's own code runs, not just the kernel's busy status
        code = "import time; print('sleeping', flush=True); time.sleep(60)"
        running = asyncio.create_task(execute(ws, code, on_output=sleeping.set))
        await asyncio.wait_for(sleeping.wait(), WAIT)
        status, body, _ = await gw.call("POST", f"/api/kernels/{kernel['id']}/interrupt")
        assert status == 204
        done = await asyncio.wait_for(running, 30)
        assert done.reply["status"] == "error" and done.reply["ename"] == "KeyboardInterrupt"
        assert (await execute(ws, "1+1")).results == ["2"]
        ws.close()


async def test_shutdown_tells_clients_and_closes_their_websocket(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        ws = await gw.websocket(kernel["id"], v1=True)
        assert (await execute(ws, "1")).results == ["1"]
        assert (await gw.call("DELETE", f"/api/kernels/{kernel['id']}"))[0] == 204
        states = []
        while True:
            frame = await asyncio.wait_for(ws.read_message(), WAIT)
            if frame is None:
                break
            channel, parts = deserialize_msg_from_ws_v1(frame)
            if channel == "iopub" and b'"status"' in parts[0]:
                states.append(parts[3])
        assert any(b"dead" in s for s in states)


async def read_until_closed(ws: WebSocketClientConnection) -> None:
    """Read and drop every message until the websocket closes (keeps the client's frame handling going)."""
    while await ws.read_message() is not None:
        pass


async def test_pings_and_no_nagle_on_the_kernel_websocket(tmp_path: Path) -> None:
    import socket

    async with running_gateway(tmp_path, ws_ping_interval=3.0) as gw:
        kernel = await gw.start_kernel()
        pinged = asyncio.Event()
        url = gw.url.replace("http://", "ws://") + f"/api/kernels/{kernel['id']}/channels"
        ws = await asyncio.wait_for(websocket_connect(url), WAIT)
        ws.on_ping = lambda _data: pinged.set()  # type: ignore[method-assign]
        gw.clients.append(ws)
        assert (await kernel_info(ws))["status"] == "ok"
        # tornado's client handles frames (pings included) only while its one-message queue is read,
        # so the kernel's later iopub messages are read meanwhile, or they would hold the ping back.
        reading = asyncio.ensure_future(read_until_closed(ws))
        try:
            await asyncio.wait_for(pinged.wait(), WAIT)
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
        (handler,) = gw.gateway.context.websockets
        assert handler.ws_connection.stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        ws.close()


@pytest.mark.parametrize("v1", [False, True], ids=["legacy", "v1"])
async def test_input_asks_the_client_and_takes_its_answer(tmp_path: Path, v1: bool) -> None:
    """``input()`` in a cell: the kernel's ``input_request`` reaches the client on stdin, and its ``input_reply``
    is what the cell reads."""
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        ws = await gw.websocket(kernel["id"], v1=v1)
        await kernel_info(ws)
        cell = request("execute_request", {"code": "print('got', input('name? '))", "silent": False,
                                           "store_history": False, "user_expressions": {}, "allow_stdin": True,
                                           "stop_on_error": True})
        send(ws, cell)
        while (asked := await read(ws))["msg_type"] != "input_request":
            pass
        assert asked["channel"] == "stdin" and asked["content"]["prompt"] == "name? "
        assert asked["parent_header"]["msg_id"] == cell["header"]["msg_id"]
        answer = request("input_reply", {"value": "ada"})
        answer["parent_header"] = asked["header"]
        send(ws, answer, channel="stdin")
        printed, replied = [], None
        while replied is None or not printed:
            got = await read(ws)
            if got["msg_type"] == "stream":
                printed.append(got["content"]["text"])
            elif got["msg_type"] == "execute_reply":
                replied = got["content"]["status"]
        assert replied == "ok" and "got ada" in "".join(printed)
        ws.close()


@pytest.mark.parametrize("v1", [False, True], ids=["legacy", "v1"])
async def test_a_request_on_control_is_answered_on_control(tmp_path: Path, v1: bool) -> None:
    """A client's control channel (opened by its first message there) reaches the kernel's control port."""
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        ws = await gw.websocket(kernel["id"], v1=v1)
        for _ in range(2):
            asked = request("kernel_info_request", {})
            send(ws, asked, channel="control")
            while (got := await read(ws))["parent_header"].get("msg_id") != asked["header"]["msg_id"] or (
                    got["msg_type"] != "kernel_info_reply"):
                pass
            assert got["channel"] == "control" and got["content"]["status"] == "ok"
        ws.close()


async def test_a_client_that_does_not_read_is_dropped_before_the_gateway_fills_up(tmp_path: Path,
                                                                                 caplog: pytest.LogCaptureFixture) -> None:
    import base64
    import dataclasses
    import json
    import os
    import socket

    async with running_gateway(tmp_path) as gw:
        context = gw.gateway.context
        context.settings = dataclasses.replace(context.settings, unsent_limit=256 * 1024)
        kernel = await gw.start_kernel()
        # a websocket client that stops reading: its receive buffer is small and it never reads
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", gw.gateway.port))
        key = base64.b64encode(os.urandom(16)).decode()
        stalled.sendall(f"GET /api/kernels/{kernel['id']}/channels HTTP/1.1\r\nHost: gateway\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        payload = json.dumps({**request("execute_request", {"code": "while True: print('x' * 1000, flush=True)",
                                                            "silent": False}), "channel": "shell"}).encode()
        mask = os.urandom(4)
        stalled.sendall(bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + mask
                        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        # the kernel prints on; the gateway drops the client that does not read it
        await eventually(lambda: not context.websockets and "left more than 262144 bytes unread" in caplog.text)
        stalled.close()
        status, _, _ = await gw.call("POST", f"/api/kernels/{kernel['id']}/interrupt")
        assert status == 204
        ws = await gw.websocket(kernel["id"])
        done = await execute(ws, "6 * 7")
        if done.reply["status"] == "aborted":  # sent before the interrupt reached the loop: ipykernel aborts it
            done = await execute(ws, "6 * 7")
        assert done.results == ["42"]
        ws.close()
