"""A websocket that drops loses nothing: its session (``?session_id=``) is kept and resumed, as Jupyter Server does.

Jupyter Server's gateway client reconnects with the same ``session_id`` when its websocket to the
gateway drops; what the kernel sent meanwhile (the reply to a cell the client ran, its output) must
reach it then, else the notebook shows the cell running forever.  Real kernels on the embedded
simulated cluster; a cell waits for a file the test writes, so what it prints and answers comes
while the client is away.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from gateway.http.bridge import KernelBridge
from gateway.http.podlink import client_identity
from gateway.http.resume import MAX_SESSION_ID
from gateway.kernels.channels import channel_address, gateway_signer
from gateway.kernels.zmqreader import CallbackSocket
from tests.gatewayharness import eventually
from tests.httpharness import (
    WAIT,
    RunningGateway,
    execute,
    execute_request,
    kernel_info,
    read,
    running_gateway,
    send,
)
from tests.test_metrics import scrape, value

pytestmark = pytest.mark.slow


def waiting_cell(go: Path) -> str:
    """A cell that says it runs, waits until ``go`` exists, then prints and answers."""
    return (f"import os, time\nprint('waiting', flush=True)\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
            "print('after the drop', flush=True)\n6 * 7")


async def start_waiting_cell(ws: WebSocketClientConnection, go: Path) -> str:
    """Send :func:`waiting_cell` and return its msg id once its code runs."""
    msg = execute_request(waiting_cell(go))
    send(ws, msg)
    while True:
        got = await read(ws)
        if got["msg_type"] == "stream" and got["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            assert got["content"]["text"] == "waiting\n"
            return str(msg["header"]["msg_id"])


async def rest_of_cell(ws: WebSocketClientConnection, msg_id: str) -> tuple[dict[str, Any], list[str]]:
    """The cell's ``execute_reply`` and what it printed and answered, read until the kernel is idle after it."""
    reply, outputs, idle = None, [], False
    while reply is None or not idle:
        got = await read(ws)
        if got["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = got["msg_type"], got["content"]
        if got["channel"] == "shell" and kind == "execute_reply":
            reply = content
        elif kind == "stream":
            outputs.append(content["text"])
        elif kind == "execute_result":
            outputs.append(content["data"]["text/plain"])
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
    return reply, outputs


async def connections(gw: RunningGateway, kernel_id: str) -> int:
    status, model, _ = await gw.call("GET", f"/api/kernels/{kernel_id}")
    assert status == 200
    return int(model["connections"])


async def dropped_while_running(gw: RunningGateway, kernel_id: str, go: Path, *, v1: bool = False,
                                session: str = "s-1") -> str:
    """A websocket of ``session`` starts :func:`waiting_cell` and drops; returns the cell's msg id once the
    gateway keeps the session."""
    ws = await gw.websocket(kernel_id, v1=v1, query=f"?session_id={session}")
    await kernel_info(ws)
    msg_id = await start_waiting_cell(ws, go)
    ws.close()
    await eventually(lambda: len(gw.gateway.context.client_sessions.kept()) == 1)
    return msg_id


@pytest.mark.parametrize("v1", [False, True], ids=["legacy", "v1"])
async def test_a_dropped_websocket_resumes_with_what_the_kernel_sent_meanwhile(tmp_path: Path, v1: bool) -> None:
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        go = tmp_path / "go"
        msg_id = await dropped_while_running(gw, kernel["id"], go, v1=v1)
        assert await connections(gw, kernel["id"]) == 0  # a kept session is no connection (culling heeds it)
        go.touch()  # the cell goes on while its client is away
        sessions = gw.gateway.context.client_sessions
        await eventually(lambda: any(s.kept_bytes for s in sessions.kept()))

        scraped = await scrape(gw)
        assert value(scraped, "kernelgate_websocket_sessions_kept") == 1
        assert value(scraped, "kernelgate_websocket_kept_bytes") > 100
        assert value(scraped, "kernelgate_websocket_connections") == 0

        ws = await gw.websocket(kernel["id"], v1=v1, query="?session_id=s-1")
        reply, outputs = await rest_of_cell(ws, msg_id)
        assert reply["status"] == "ok"
        assert outputs == ["after the drop\n", "42"]
        assert len(sessions.kept()) == 0 and await connections(gw, kernel["id"]) == 1
        scraped = await scrape(gw)
        assert value(scraped, "kernelgate_websocket_sessions_kept") == 0
        assert value(scraped, "kernelgate_websocket_kept_bytes") == 0
        # the resumed session goes on as any: same sockets, same kernel
        assert (await execute(ws, "6 * 7")).results == ["42"]
        ws.close()


async def test_a_websocket_without_a_session_id_is_not_kept(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        ws = await gw.websocket(kernel["id"])
        await kernel_info(ws)
        ws.close()
        await eventually(lambda: not gw.gateway.context.websockets)
        assert len(gw.gateway.context.client_sessions.kept()) == 0
        assert await connections(gw, kernel["id"]) == 0


async def test_another_session_gets_nothing_kept_for_the_first(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        go = tmp_path / "go"
        msg_id = await dropped_while_running(gw, kernel["id"], go)
        other = await gw.websocket(kernel["id"], query="?session_id=s-2")
        go.touch()
        # the other session sees the cell's iopub (as any client of the kernel) but never its reply
        seen = []
        while not seen or seen[-1]["msg_type"] != "status" or seen[-1]["content"]["execution_state"] != "idle":
            seen.append(await read(other))
        assert not [m for m in seen if m["channel"] == "shell"]
        assert (await execute(other, "1 + 1")).results == ["2"]

        first = await gw.websocket(kernel["id"], query="?session_id=s-1")
        reply, outputs = await rest_of_cell(first, msg_id)
        assert reply["status"] == "ok" and outputs == ["after the drop\n", "42"]
        other.close()
        first.close()


async def test_a_newer_websocket_of_a_session_takes_it_over_from_the_open_one(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        go = tmp_path / "go"
        older = await gw.websocket(kernel["id"], query="?session_id=s-1")
        await kernel_info(older)
        msg_id = await start_waiting_cell(older, go)

        newer = await gw.websocket(kernel["id"], query="?session_id=s-1")  # the client gave up on the older one
        await gw.closed(older)
        assert older.close_code == 1000 and "newer connection" in (older.close_reason or "")
        go.touch()
        reply, outputs = await rest_of_cell(newer, msg_id)
        assert reply["status"] == "ok" and outputs == ["after the drop\n", "42"]
        assert await connections(gw, kernel["id"]) == 1
        newer.close()


async def test_a_session_resumes_only_with_its_protocol(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        go = tmp_path / "go"
        msg_id = await dropped_while_running(gw, kernel["id"], go, v1=False)
        ws = await gw.websocket(kernel["id"], v1=True, query="?session_id=s-1")
        assert len(gw.gateway.context.client_sessions.kept()) == 0  # the kept one was dropped: a new session
        await kernel_info(ws, channel="control")  # its sockets reached the kernel (answered while the cell runs)
        go.touch()
        # what was kept is gone, but the session's identity is the same: the cell's reply comes, in v1 framing
        reply, outputs = await rest_of_cell(ws, msg_id)
        assert reply["status"] == "ok" and outputs == ["after the drop\n", "42"]
        ws.close()


async def kept_after_a_drop(gw: RunningGateway, kernel_id: str, session: str = "s-1") -> KernelBridge:
    """A websocket of ``session`` asks ``kernel_info`` and closes; returns the kept session's bridge."""
    ws = await gw.websocket(kernel_id, query=f"?session_id={session}")
    await kernel_info(ws)
    ws.close()
    sessions = gw.gateway.context.client_sessions
    await eventually(lambda: len(sessions.kept()) == 1)
    bridge = sessions.kept()[0].bridge
    assert bridge is not None
    return bridge


async def test_a_resumed_session_takes_its_replies_back_from_another_replica(tmp_path: Path) -> None:
    """Another replica served the session meanwhile (its sockets took the session's identity over): the
    session's next websocket here links again under it, and the kernel's replies come back here."""
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        bridge = await kept_after_a_drop(gw, kernel["id"])
        assert bridge.link is not None
        older = bridge.link

        connection = gw.gateway.context.service.get(kernel["id"]).connection
        identity = client_identity(connection, "s-1", "python")
        assert identity == older.identity  # what any replica makes for the session
        answers: list[list[bytes]] = []
        other = CallbackSocket("DEALER", channel_address(connection, "shell"), answers.append, identity=identity,
                               what="another replica's shell socket of session s-1")
        other.start()
        try:
            _, asked = gateway_signer(connection).request("kernel_info_request")
            await other.send(asked)
            await eventually(lambda: answers)  # the kernel routes the session's replies there now

            ws = await gw.websocket(kernel["id"], query="?session_id=s-1")
            assert (await execute(ws, "6 * 7")).results == ["42"]
            await eventually(lambda: older.closed)  # the older link, deaf since, is closed
            assert len(answers) == 1
            ws.close()
        finally:
            other.close()


async def test_a_kept_session_takes_its_identity_on_a_restarted_kernel_only_when_its_client_is_back(
        tmp_path: Path) -> None:
    """While its client is away (perhaps served by another replica under the session's identity), a kept session
    follows its kernel to the new pod under an identity of its own; its next websocket links under the session's."""
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        bridge = await kept_after_a_drop(gw, kernel["id"])
        served = gw.gateway.context.service.get(kernel["id"])
        before = served.connection
        status, _, _ = await gw.call("POST", f"/api/kernels/{kernel['id']}/restart")
        assert status == 200
        link = await eventually(lambda: bridge.link if bridge.link and bridge.link.connection is not before else None)
        assert link.connection is served.connection
        assert link.identity != client_identity(served.connection, "s-1", "python")

        ws = await gw.websocket(kernel["id"], query="?session_id=s-1")
        assert bridge.link is not None and bridge.link.identity == client_identity(served.connection, "s-1", "python")
        assert (await execute(ws, "6 * 7")).results == ["42"]
        ws.close()


async def test_a_kept_session_ends_with_its_kernel_and_leaves_nothing(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        await dropped_while_running(gw, kernel["id"], tmp_path / "go")
        status, _, _ = await gw.call("DELETE", f"/api/kernels/{kernel['id']}")
        assert status == 204
        assert len(gw.gateway.context.client_sessions.kept()) == 0
        assert await gw.kernel_objects() == set()
        status, body, _ = await gw.call("GET", f"/api/kernels/{kernel['id']}")
        assert status == 404


async def test_a_kept_session_past_its_bounds_is_dropped(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        sessions = gw.gateway.context.client_sessions
        kernel = await gw.start_kernel()
        sessions.max_kept_bytes = 200  # less than the cell's reply: the session cannot keep it
        go = tmp_path / "go"
        await dropped_while_running(gw, kernel["id"], go)
        go.touch()
        await eventually(lambda: len(sessions.kept()) == 0)
        ws = await gw.websocket(kernel["id"], query="?session_id=s-1")
        done = await execute(ws, "1 + 1")  # a new session: nothing of the old cell comes before
        assert done.results == ["2"] and all(m["parent_header"].get("msg_id") == done.msg_id
                                             for m in done.seen if m["channel"] == "shell")
        ws.close()

        sessions.max_kept_bytes = 1 << 20
        sessions.max_kept_seconds = 0.05  # not back in time
        await dropped_while_running(gw, kernel["id"], tmp_path / "go-again", session="s-3")
        await eventually(lambda: len(sessions.kept()) == 0)


async def test_no_session_is_kept_when_the_operator_says_so(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, buffer_offline_messages=False) as gw:
        kernel = await gw.start_kernel()
        ws = await gw.websocket(kernel["id"], query="?session_id=s-1")
        await kernel_info(ws)
        ws.close()
        await eventually(lambda: not gw.gateway.context.websockets)
        assert len(gw.gateway.context.client_sessions.kept()) == 0


async def test_a_session_id_too_long_is_a_400_before_the_upgrade(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        url = gw.url.replace("http://", "ws://") + f"/api/kernels/{kernel['id']}/channels?session_id=" + (
            "x" * (MAX_SESSION_ID + 1))
        with pytest.raises(HTTPClientError) as raised:
            await asyncio.wait_for(websocket_connect(HTTPRequest(url, request_timeout=WAIT)), WAIT)
        assert raised.value.code == 400
        body = json.loads(raised.value.response.body) if raised.value.response else {}
        assert "session_id" in body.get("message", "")
        assert len(gw.gateway.context.client_sessions.kept()) == 0 and not gw.gateway.context.websockets


async def test_a_kernel_keeps_few_sessions_and_drops_the_oldest(tmp_path: Path) -> None:
    """Each kept session holds sockets to the kernel's pod: a client opening and dropping many cannot pile them up."""
    async with running_gateway(tmp_path) as gw:
        sessions = gw.gateway.context.client_sessions
        sessions.max_kept_sessions = 2
        kernel = await gw.start_kernel()
        for number in range(3):
            ws = await gw.websocket(kernel["id"], query=f"?session_id=s-{number}")
            await kernel_info(ws)
            ws.close()
            await eventually(lambda: not gw.gateway.context.websockets)
        assert len(sessions.kept()) == 2
        assert {s.session_id for s in sessions.kept()} == {"s-1", "s-2"}
