"""The whole gateway on the embedded simulated cluster, served on 127.0.0.1, for HTTP and WebSocket tests.

``running_gateway`` starts :class:`gateway.app.Gateway` as ``kernelgate serve``
does (RBAC applied, the gateway acting as its service account, a node agent
running real IPython kernels), on any free port, and gives tests an HTTP
client, websocket helpers and the cluster's admin view::

    async with running_gateway(tmp_path) as gw:
        status, kernel, _ = await gw.call("POST", "/api/kernels", {"env": {"KERNEL_USERNAME": "alice"}})
        ws = await gw.websocket(kernel["id"])
        assert await run_legacy(ws, "1+1") == ...

Config traits are passed as keyword arguments (``auth_token="s3cret"``).
Leaving the block stops the gateway (every kernel shut down); a task left
behind fails the test (``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from gateway.app import EmbeddedCluster, Gateway
from gateway.cluster.interface import Cluster
from gateway.config import GatewayConfig
from tests.node import FAST

WAIT = 60.0
"""Bound on a kernel start or an execution on a loaded machine."""
USER = "alice"
LEFTOVER_KINDS = ("pods", "namespaces", "rolebindings", "secrets", "services", "configmaps", "serviceaccounts",
                  "persistentvolumeclaims")
V1 = "v1.kernel.websocket.jupyter.org"


@dataclass
class RunningGateway:
    gateway: Gateway
    cluster: EmbeddedCluster
    token: str = ""
    http: AsyncHTTPClient = field(default_factory=AsyncHTTPClient)
    clients: list[WebSocketClientConnection] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.gateway.url

    async def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                   headers: dict[str, str] | None = None, token: str | None = None) -> tuple[int, Any, Any]:
        """``(status, decoded JSON body or None, headers)`` of one request (never raises on a status)."""
        all_headers = dict(headers or {})
        token = self.token if token is None else token
        if token:
            all_headers.setdefault("Authorization", f"token {token}")
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PUT", "PATCH"):
            data = b""
        response = await self.http.fetch(
            HTTPRequest(self.url + path, method=method, body=data, headers=all_headers,
                        request_timeout=WAIT + 30, allow_nonstandard_methods=True),
            raise_error=False)
        text = response.body or b""
        decoded = json.loads(text) if text and "json" in response.headers.get("Content-Type", "") else None
        return response.code, decoded, response.headers

    async def start_kernel(self, **env: str) -> dict[str, Any]:
        status, model, _ = await self.call("POST", "/api/kernels", {"env": {"KERNEL_USERNAME": USER, **env}})
        assert status == 201, model
        return model

    async def websocket(self, kernel_id: str, *, v1: bool = False, query: str = "") -> WebSocketClientConnection:
        url = self.url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels" + query
        headers = {"Authorization": f"token {self.token}"} if self.token and not query else {}
        ws = await asyncio.wait_for(websocket_connect(
            HTTPRequest(url, headers=headers, request_timeout=WAIT), subprotocols=[V1] if v1 else None), WAIT)
        self.clients.append(ws)
        return ws

    async def closed(self, ws: WebSocketClientConnection) -> None:
        """Wait until the websocket is closed (messages still in flight are read and dropped)."""
        while ws.close_code is None and await asyncio.wait_for(ws.read_message(), WAIT) is not None:
            pass

    async def objects(self) -> set[tuple[str, str, str]]:
        """Every object of the kinds a kernel may create, as ``(kind, namespace, name)``, as the admin sees them."""
        found = set()
        for kind in LEFTOVER_KINDS:
            listing = await self.cluster.admin.list(kind)
            for item in listing["items"]:
                meta = item["metadata"]
                found.add((kind, meta.get("namespace") or "", meta["name"]))
        return found

    async def kernel_objects(self) -> set[tuple[str, str, str]]:
        """Objects labelled as the gateway's kernels'."""
        found = set()
        for kind in LEFTOVER_KINDS:
            listing = await self.cluster.admin.list(kind, label_selector="kernel_id")
            for item in listing["items"]:
                meta = item["metadata"]
                found.add((kind, meta.get("namespace") or "", meta["name"]))
        return found


@contextlib.asynccontextmanager
async def running_gateway(tmp_path: Path, *, wrap: Callable[[Cluster], Cluster] | None = None,
                          **traits: Any) -> AsyncIterator[RunningGateway]:
    """The gateway on a fresh embedded cluster; ``traits`` set :class:`GatewayConfig` values."""
    traits.setdefault("kernel_launch_timeout", WAIT)
    traits.setdefault("shutdown_wait_time", 2.0)
    config = GatewayConfig(ip="127.0.0.1", port=0, **traits)
    embedded = EmbeddedCluster(config.namespace, work_dir=tmp_path / f"node-{uuid.uuid4().hex[:6]}",
                               agent_options={"backoff": FAST, "shutdown_grace_seconds": 1})
    if wrap is not None:
        embedded.cluster = wrap(embedded.cluster)
    gateway = Gateway(config, cluster=embedded, response_port=0)
    await gateway.start()
    running = RunningGateway(gateway, embedded, token=config.auth_token)
    try:
        yield running
    finally:
        await gateway.stop()  # closes the websockets it serves, as at SIGTERM
        for ws in running.clients:
            await running.closed(ws)


# ---------------------------------------------------------------------- kernel messages over the websocket


def request(msg_type: str, content: dict[str, Any], *, session: str = "test-session") -> dict[str, Any]:
    """A client's message (header, parent_header, metadata, content) as a notebook front end builds it."""
    return {
        "header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": USER, "session": session,
                   "date": "2026-01-01T00:00:00.000000Z", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "content": content, "buffers": [],
    }


def execute_request(code: str) -> dict[str, Any]:
    return request("execute_request", {"code": code, "silent": False, "store_history": True,
                                       "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})


async def read(ws: WebSocketClientConnection, timeout: float = WAIT) -> dict[str, Any]:
    """The next kernel message on a websocket, decoded (legacy JSON, legacy binary or v1)."""
    from jupyter_server.services.kernels.connection.base import (
        deserialize_binary_message,
        deserialize_msg_from_ws_v1,
    )

    frame = await asyncio.wait_for(ws.read_message(), timeout)
    assert frame is not None, "the gateway closed the websocket"
    if isinstance(frame, str):
        return json.loads(frame)
    if ws.selected_subprotocol == V1:
        channel, parts = deserialize_msg_from_ws_v1(frame)
        msg = {name: json.loads(part) for name, part in zip(("header", "parent_header", "metadata", "content"),
                                                               parts[:4], strict=True)}
        msg.update(channel=channel, buffers=parts[4:], msg_type=msg["header"]["msg_type"])
        return msg
    return deserialize_binary_message(frame)


def send(ws: WebSocketClientConnection, msg: dict[str, Any], channel: str = "shell") -> None:
    """Send a client message in the framing of the websocket's protocol (Jupyter Server's own encoders)."""
    from jupyter_server.services.kernels.connection.base import serialize_binary_message, serialize_msg_to_ws_v1

    if ws.selected_subprotocol == V1:
        parts = [json.dumps(msg[k]).encode() for k in ("header", "parent_header", "metadata", "content")]
        ws.write_message(serialize_msg_to_ws_v1(parts + list(msg.get("buffers") or []), channel), binary=True)
    elif msg.get("buffers"):
        ws.write_message(serialize_binary_message({**msg, "channel": channel}), binary=True)
    else:
        ws.write_message(json.dumps({**msg, "channel": channel}))


async def kernel_info(ws: WebSocketClientConnection, timeout: float = WAIT, *, channel: str = "shell") -> dict[str, Any]:
    """A ``kernel_info_request`` round trip, as front ends start: once answered, the connection relays iopub.

    On ``control`` it is answered while a cell runs (ipykernel's control thread).
    """
    msg = request("kernel_info_request", {})
    send(ws, msg, channel)
    while True:
        got = await read(ws, timeout)
        if got["channel"] == channel and got["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return got["content"]


@dataclass
class Execution:
    msg_id: str
    reply: dict[str, Any]
    results: list[str]
    seen: list[dict[str, Any]]
    """Every message read meanwhile, in order."""


async def execute(ws: WebSocketClientConnection, code: str, *, timeout: float = WAIT,
                  on_output: Callable[[], Any] | None = None) -> Execution:
    """Run ``code`` through the websocket: its ``execute_reply`` and its text results/streams.

    ``on_output`` is called at each result or stream output (the cell's code is running).
    """
    msg = execute_request(code)
    msg_id = msg["header"]["msg_id"]
    send(ws, msg)
    results: list[str] = []
    seen: list[dict[str, Any]] = []
    reply = None
    idle = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while reply is None or not idle:
        got = await read(ws, max(0.1, deadline - loop.time()))
        seen.append(got)
        if got["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = got["header"]["msg_type"], got["content"]
        if got["channel"] == "shell" and kind == "execute_reply":
            reply = content
        elif kind in ("execute_result", "stream"):
            results.append(content["data"]["text/plain"] if kind == "execute_result" else content["text"])
            if on_output is not None:
                on_output()
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
    return Execution(msg_id, reply, results, seen)
