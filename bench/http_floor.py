"""What the HTTP server alone costs a kernel start: tornado, aiohttp and a bare asyncio protocol on the same exchanges.

A start through the gateway is, on the wire, ``POST /api/kernels`` (a JSON body in, ``201`` and the kernel's
model out), then a websocket on the kernel's channels: one ``kernel_info_request`` in, three messages out
(status ``busy``, the reply, status ``idle``).  Servers answer exactly that, with no kernel behind them,
each in a process of its own on the gateway's loop:

* ``tornado``: an ``Application`` with a ``RequestHandler`` and a ``WebSocketHandler``, as ``gateway/http`` uses them;
* ``aiohttp``: its ``web.Application`` with a handler and a ``WebSocketResponse`` (when aiohttp is installed: the
  kubernetes client brings it), the other full server a gateway could be built on;
* ``aiohttp-low``: aiohttp's low-level ``web_server.Server`` with one handler for both requests: its C parser
  and websocket reader without the application's router and middleware, the least aiohttp does;
* ``protocol``: one ``asyncio.Protocol`` that reads the request line, the headers and a ``Content-Length`` body,
  answers the websocket upgrade (RFC 6455) and reads and writes whole frames: about the least any server does.

The client is the benchmark's own (:class:`bench.starts.GatewayClient`, the requests ``make bench`` times), the
servers taken in turn.  Prints each one's median CPU per exchange and its difference from tornado's: what another
server could take off the gateway's CPU per start (``make bench``, ``bench/README.md``).

    python bench/http_floor.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import socket
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procs import run_seconds  # noqa: E402
from bench.starts import GatewayClient  # noqa: E402
from gateway import aio  # noqa: E402

try:  # the kubernetes client brings it; measured where installed (:func:`available`)
    from aiohttp import WSMsgType, web, web_server
    HAVE_AIOHTTP = True
except ImportError:
    HAVE_AIOHTTP = False

KERNEL_MODEL = {"id": "00000000-0000-4000-8000-000000000000", "name": "python_kubernetes",
                "last_activity": "2026-01-01T00:00:00.000000Z", "execution_state": "idle", "connections": 0}
REPLY_CONTENT = {"status": "ok", "protocol_version": "5.3", "implementation": "ipython", "implementation_version": "8",
                 "language_info": {"name": "python", "version": "3.11", "mimetype": "text/x-python",
                                   "file_extension": ".py", "pygments_lexer": "ipython3", "nbconvert_exporter": "python",
                                   "codemirror_mode": {"name": "ipython", "version": 3}},
                 "banner": "Python 3.11" + " " * 400, "help_links": [], "debugger": False}
"""About the size of ipykernel's reply: the bytes a start's websocket writes are what they would be."""
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SETTLE = 0.3
"""Pause before each exchange, as between the starts ``make bench`` measures one at a time."""


def answers(frame: str) -> list[str]:
    """The three messages a kernel's websocket sends for one ``kernel_info_request`` (legacy protocol, JSON text)."""
    request = json.loads(frame)
    parent = request["header"]

    def message(msg_type: str, channel: str, content: dict[str, Any]) -> str:
        header = {**parent, "msg_id": parent["msg_id"] + msg_type, "msg_type": msg_type}
        return json.dumps({"header": header, "parent_header": parent, "metadata": {}, "content": content,
                           "channel": channel})

    return [message("status", "iopub", {"execution_state": "busy"}),
            message("kernel_info_reply", "shell", REPLY_CONTENT),
            message("status", "iopub", {"execution_state": "idle"})]


# ---------------------------------------------------------------------------- tornado, as gateway/http uses it


async def serve_tornado() -> None:
    from tornado import httpserver, web, websocket

    class Kernels(web.RequestHandler):
        def post(self) -> None:
            json.loads(self.request.body)
            self.set_status(201)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(KERNEL_MODEL))

    class Channels(websocket.WebSocketHandler):
        def check_origin(self, origin: str) -> bool:
            return True

        def on_message(self, message: str | bytes) -> None:
            for answer in answers(message if isinstance(message, str) else message.decode()):
                self.write_message(answer)

    server = httpserver.HTTPServer(web.Application([(r"/api/kernels", Kernels),
                                                    (r"/api/kernels/[^/]+/channels", Channels)]))
    sock = _bind()
    server.add_sockets([sock])
    _announce(sock.getsockname()[1])
    await asyncio.Event().wait()


# ---------------------------------------------------------------------------- aiohttp's server


async def _aiohttp_kernel(request: Any) -> Any:
    """``POST /api/kernels`` on aiohttp (``request`` a ``web.BaseRequest``): both aiohttp servers answer with it."""
    await request.json()
    return web.Response(status=201, text=json.dumps(KERNEL_MODEL), content_type="application/json")


async def _aiohttp_channels(request: Any) -> Any:
    """The kernel's websocket on aiohttp: each text message answered as a kernel would (:func:`answers`)."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            for answer in answers(message.data):
                await ws.send_str(answer)
    return ws


async def serve_aiohttp() -> None:
    app = web.Application()
    app.router.add_post("/api/kernels", _aiohttp_kernel)
    app.router.add_get("/api/kernels/{kernel_id}/channels", _aiohttp_channels)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = _bind()
    await web.SockSite(runner, sock).start()
    _announce(sock.getsockname()[1])
    await asyncio.Event().wait()


async def serve_aiohttp_low() -> None:
    async def handle(request: Any) -> Any:
        return await (_aiohttp_kernel if request.method == "POST" else _aiohttp_channels)(request)

    sock = _bind()
    server = await asyncio.get_running_loop().create_server(web_server.Server(handle, access_log=None), sock=sock)
    _announce(sock.getsockname()[1])
    await server.serve_forever()


# ---------------------------------------------------------------------------- the least a server does


class BareHttp(asyncio.Protocol):
    """HTTP/1.1 with ``Content-Length`` bodies and a websocket upgrade; unfragmented websocket frames after it."""

    def __init__(self) -> None:
        self.buffer = b""
        self.websocket = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer and self.transport is not None and not self.transport.is_closing():
            taken = self.frame() if self.websocket else self.request()
            if not taken:
                return

    def request(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        if len(self.buffer) < end + 4 + length:
            return False
        body, self.buffer = self.buffer[end + 4:end + 4 + length], self.buffer[end + 4 + length:]
        assert self.transport is not None
        if headers.get("upgrade", "").lower() == "websocket":
            accept = base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode() + WS_GUID).digest())
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            self.websocket = True
            return True
        json.loads(body)
        model = json.dumps(KERNEL_MODEL).encode()
        self.transport.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(model), model))
        if headers.get("connection", "").lower() == "close":
            self.transport.close()
        return True

    def frame(self) -> bool:
        data = self.buffer
        if len(data) < 2:
            return False
        opcode, length, start = data[0] & 0x0F, data[1] & 0x7F, 2
        if length >= 126:
            size = 2 if length == 126 else 8
            length, start = int.from_bytes(data[2:2 + size], "big"), 2 + size
        if len(data) < start + 4 + length:
            return False
        mask, payload = data[start:start + 4], data[start + 4:start + 4 + length]
        self.buffer = data[start + 4 + length:]
        keys = (mask * (length // 4 + 1))[:length]
        payload = (int.from_bytes(payload, "little") ^ int.from_bytes(keys, "little")).to_bytes(length, "little")
        assert self.transport is not None
        if opcode == 0x8:  # close: echo it, then end
            self.transport.write(b"\x88\x00")
            self.transport.close()
        elif opcode in (0x1, 0x2):  # a ping (the client sends none) would go unanswered
            for answer in answers(payload.decode()):
                self.transport.write(_text_frame(answer.encode()))
        return True


def _text_frame(data: bytes) -> bytes:
    if len(data) < 126:
        return bytes([0x81, len(data)]) + data
    if len(data) < 1 << 16:
        return bytes([0x81, 126]) + len(data).to_bytes(2, "big") + data
    return bytes([0x81, 127]) + len(data).to_bytes(8, "big") + data


async def serve_protocol() -> None:
    sock = _bind()
    server = await asyncio.get_running_loop().create_server(BareHttp, sock=sock)
    _announce(sock.getsockname()[1])
    await server.serve_forever()


def _bind() -> socket.socket:
    """A listening socket on a free loopback port, non-blocking as tornado's ``add_sockets`` needs it."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def _announce(port: int) -> None:
    print(f"serving on {port}", flush=True)


# ---------------------------------------------------------------------------- the measurement


class Server:
    """One of the servers, in a process of its own."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", kind], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("serving on "):
            self.stop()
            raise RuntimeError(f"the {kind} server did not start")
        self.client = GatewayClient(f"http://127.0.0.1:{line.split()[-1]}")
        self.cpu_ms: list[float] = []

    async def exchange(self) -> None:
        before = run_seconds(self.proc.pid)
        kernel = await self.client.fetch("/api/kernels", "POST", {"env": {"KERNEL_USERNAME": "bench"}})
        assert isinstance(kernel, dict)
        await self.client.kernel_info(kernel["id"])
        self.cpu_ms.append(1000 * (run_seconds(self.proc.pid) - before))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


SERVERS = {"tornado": serve_tornado, "aiohttp": serve_aiohttp, "aiohttp-low": serve_aiohttp_low,
           "protocol": serve_protocol}


def available() -> list[str]:
    """The servers this environment can run: aiohttp's two only where it is installed."""
    if not HAVE_AIOHTTP:
        return ["tornado", "protocol"]
    return list(SERVERS)


async def measure(rounds: int) -> None:
    servers: list[Server] = []
    try:
        for kind in available():  # one that does not start stops those started before it (finally)
            servers.append(Server(kind))
        for server in servers:  # warm-up, not counted
            for _ in range(3):
                await server.exchange()
            server.cpu_ms.clear()
        for index in range(rounds):  # interleaved, so that the machine's load hits all alike
            for server in servers if index % 2 == 0 else reversed(servers):
                await asyncio.sleep(SETTLE)
                await server.exchange()
    finally:
        for server in servers:
            server.stop()
    print(f"server CPU per start's HTTP exchanges (POST /api/kernels, then a websocket and one kernel_info), "
          f"median of {rounds}, and what each would take off tornado's:")
    tornado = statistics.median(servers[0].cpu_ms)
    for server in servers:
        cpu = statistics.median(server.cpu_ms)
        print(f"  {server.kind:11s} {cpu:6.2f} ms" + (f"  ({tornado - cpu:+.2f} ms)" if server is not servers[0] else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--serve", choices=tuple(SERVERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        aio.run(SERVERS[args.serve]())  # the gateway's loop
    else:
        asyncio.run(measure(args.rounds))


if __name__ == "__main__":
    main()
