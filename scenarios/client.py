"""A small black-box client of the gateway: its REST API over HTTP and a kernel's channels over a WebSocket.

Scenarios talk to the gateway only through this module, as a notebook server
would (Jupyter Server's gateway client speaks the same API)::

    client = GatewayClient(url, token, wait=60)
    status, kernel = await client.call("POST", "/api/kernels", {"env": {"KERNEL_USERNAME": "alice"}})
    async with client.channels(kernel["id"]) as channels:
        reply = await channels.execute("1+1")     # reply.status == "ok", reply.results == ["2"]

The WebSocket uses the legacy protocol (one JSON text frame per message,
with a ``channel`` key).  Every wait is bounded by ``wait`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

KERNEL_NAME = "python_kubernetes"
"""The kernelspec the scenarios start (shipped in kernelspecs/ and in the gateway image)."""


class GatewayClient:
    """The gateway at ``url`` (``http://host:port[/base]``), authenticated with ``token`` when one is set."""

    def __init__(self, url: str, token: str, *, wait: float) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.wait = wait
        self._http = AsyncHTTPClient()

    async def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                   token: str | None = None) -> tuple[int, Any]:
        """``(status, decoded JSON body or None)`` of one request; never raises on an error status.

        ``token`` overrides the client's token ("" sends none).
        """
        token = self.token if token is None else token
        headers = {"Authorization": f"token {token}"} if token else {}
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PUT", "PATCH"):
            data = b""
        if data:
            headers["Content-Type"] = "application/json"
        response = await self._http.fetch(
            HTTPRequest(self.url + path, method=method, body=data, headers=headers,
                        connect_timeout=self.wait, request_timeout=self.wait * 2,
                        allow_nonstandard_methods=True),
            raise_error=False)
        if response.code == 599:  # no HTTP answer at all
            raise ConnectionError(f"{method} {path}: {response.error}")
        text = response.body or b""
        is_json = "json" in response.headers.get("Content-Type", "")
        return response.code, (json.loads(text) if text and is_json else None)

    async def start_kernel(self, username: str, **env: str) -> dict[str, Any]:
        """Start a Python kernel for ``username``; its model (fails unless 201)."""
        status, model = await self.call("POST", "/api/kernels",
                                        {"name": KERNEL_NAME, "env": {"KERNEL_USERNAME": username, **env}})
        assert status == 201, f"starting a kernel answered {status}: {model}"
        return model

    async def shutdown_kernel(self, kernel_id: str) -> None:
        status, body = await self.call("DELETE", f"/api/kernels/{kernel_id}")
        assert status == 204, f"shutting down {kernel_id} answered {status}: {body}"

    @contextlib.asynccontextmanager
    async def channels(self, kernel_id: str) -> AsyncIterator[KernelChannels]:
        """A WebSocket to the kernel's channels, closed on leaving the block."""
        url = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        request = HTTPRequest(f"{url}/api/kernels/{kernel_id}/channels", headers=headers,
                              connect_timeout=self.wait, request_timeout=self.wait)
        ws = await asyncio.wait_for(websocket_connect(request), self.wait)
        try:
            yield KernelChannels(ws, self.wait)
        finally:
            ws.close()


@dataclass
class Reply:
    """What one ``execute_request`` produced: the reply's content and the text of its outputs."""

    status: str
    content: dict[str, Any]
    results: list[str] = field(default_factory=list)
    """``execute_result`` text/plain values and stream text, in order."""


class KernelChannels:
    """One client's WebSocket to a kernel (legacy JSON protocol)."""

    def __init__(self, ws: WebSocketClientConnection, wait: float) -> None:
        self.ws = ws
        self.wait = wait
        self.session = uuid.uuid4().hex

    def send(self, msg_type: str, content: dict[str, Any], channel: str = "shell") -> str:
        """Send a message as a front end builds it; its ``msg_id``."""
        msg_id = uuid.uuid4().hex
        self.ws.write_message(json.dumps({
            "channel": channel,
            "header": {"msg_id": msg_id, "msg_type": msg_type, "username": "scenario", "session": self.session,
                       "date": "2026-01-01T00:00:00.000000Z", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "content": content, "buffers": [],
        }))
        return msg_id

    async def receive(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message from the kernel (``AssertionError`` when the gateway closed the WebSocket)."""
        frame = await asyncio.wait_for(self.ws.read_message(), timeout or self.wait)
        assert frame is not None, f"the gateway closed the websocket ({self.ws.close_code} {self.ws.close_reason})"
        assert isinstance(frame, str), "a binary frame on a legacy connection without buffers"
        return json.loads(frame)

    async def status(self, *states: str) -> str:
        """Wait for an iopub ``status`` message with one of ``states``; the state seen."""
        while True:
            msg = await self.receive()
            if msg["channel"] == "iopub" and msg["header"]["msg_type"] == "status":
                state = msg["content"]["execution_state"]
                if state in states:
                    return state

    async def execute(self, code: str, *, on_output: Any = None) -> Reply:
        """Run ``code``; wait for its reply and for the kernel to go idle again.

        ``on_output`` (a coroutine function) is awaited at the first output of
        the code (a stream or a result): the code is running then.
        """
        msg_id = self.send("execute_request", {"code": code, "silent": False, "store_history": True,
                                               "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        reply: dict[str, Any] | None = None
        results: list[str] = []
        idle = False
        while reply is None or not idle:
            msg = await self.receive(max(0.1, deadline - loop.time()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["header"]["msg_type"], msg["content"]
            if msg["channel"] == "shell" and kind == "execute_reply":
                reply = content
            elif kind in ("execute_result", "stream"):
                results.append(content["data"]["text/plain"] if kind == "execute_result" else content["text"])
                if on_output is not None:
                    callback, on_output = on_output, None
                    await callback()
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        return Reply(reply["status"], reply, results)
