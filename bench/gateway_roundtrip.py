"""Execute round trips through the gateway's websocket against talking ZMQ directly to the same kernel.

Starts the gateway in this process on the embedded simulated cluster, starts
one real kernel through its REST API, then times ``execute_request`` ->
``execute_reply`` + iopub ``idle`` (what a notebook cell waits for):

* directly over the kernel's ZMQ sockets (the floor),
* through the gateway's websocket, legacy protocol,
* through the gateway's websocket, ``v1.kernel.websocket.jupyter.org``.

Prints median and 90th percentile per path, and the gateway's overhead as a
difference and a ratio against the floor measured in the same run.  The
client and the gateway share one event loop here, so the overhead includes
the client's own websocket work.

    python bench/gateway_roundtrip.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.app import EmbeddedCluster, Gateway  # noqa: E402
from gateway.config import GatewayConfig  # noqa: E402
from gateway.http.wsprotocol import V1_PROTOCOL, pack_v1, unpack_v1  # noqa: E402
from gateway.kernels.channels import KernelChannels  # noqa: E402
from gateway.kernels.frames import split_zmq  # noqa: E402

CODE = "1+1"
CONTENT = {"code": CODE, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False,
           "stop_on_error": True}
TIMEOUT = 30.0


async def zmq_round(channels: KernelChannels) -> float:
    """One round over the kernel's own sockets, reading frames as lightly as the websocket client does."""
    start = time.perf_counter()
    msg = await channels.send("shell", "execute_request", CONTENT)
    msg_id = msg["header"]["msg_id"]
    replied = idle = False
    while not replied:
        _, parts = split_zmq(await channels.recv_raw("shell", TIMEOUT))
        replied = json.loads(parts[1]).get("msg_id") == msg_id
    while not idle:
        _, parts = split_zmq(await channels.recv_raw("iopub", TIMEOUT))
        idle = (json.loads(parts[1]).get("msg_id") == msg_id and json.loads(parts[0])["msg_type"] == "status"
                and json.loads(parts[3])["execution_state"] == "idle")
    return time.perf_counter() - start


def header(msg_type: str) -> dict[str, str]:
    return {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": "bench", "session": "bench",
            "date": "2026-01-01T00:00:00Z", "version": "5.3"}


async def ws_round(ws: WebSocketClientConnection) -> float:
    v1 = ws.selected_subprotocol == V1_PROTOCOL
    msg = {"header": header("execute_request"), "parent_header": {}, "metadata": {}, "content": CONTENT}
    start = time.perf_counter()
    if v1:
        parts = [json.dumps(msg[k]).encode() for k in ("header", "parent_header", "metadata", "content")]
        ws.write_message(pack_v1("shell", parts), binary=True)
    else:
        ws.write_message(json.dumps({**msg, "channel": "shell"}))
    replied = idle = False
    msg_id = msg["header"]["msg_id"]
    while not (replied and idle):
        frame = await asyncio.wait_for(ws.read_message(), TIMEOUT)
        if v1:
            channel, parts = unpack_v1(frame)
            got = {"channel": channel, "header": json.loads(parts[0]), "parent_header": json.loads(parts[1]),
                   "content": json.loads(parts[3])}
        else:
            got = json.loads(frame)
        if got["parent_header"].get("msg_id") != msg_id:
            continue
        kind = got["header"]["msg_type"]
        replied = replied or (got["channel"] == "shell" and kind == "execute_reply")
        idle = idle or (kind == "status" and got["content"]["execution_state"] == "idle")
    return time.perf_counter() - start


def summary(name: str, seconds: list[float]) -> tuple[float, str]:
    ms = sorted(s * 1000 for s in seconds)
    median = statistics.median(ms)
    p90 = ms[int(len(ms) * 0.9) - 1]
    return median, f"{name:<28} median {median:7.3f} ms   p90 {p90:7.3f} ms"


async def main(rounds: int, warmup: int) -> None:
    with tempfile.TemporaryDirectory(prefix="kernelgate-bench-") as work:
        config = GatewayConfig(ip="127.0.0.1", port=0, unauthorized_users=[])
        embedded = EmbeddedCluster(config.namespace, work_dir=Path(work) / "node")
        gateway = Gateway(config, cluster=embedded, response_port=0)
        await gateway.start()
        try:
            http = AsyncHTTPClient()
            response = await http.fetch(HTTPRequest(gateway.url + "/api/kernels", method="POST",
                                                    body=json.dumps({"env": {"KERNEL_USERNAME": "bench"}}),
                                                    request_timeout=120))
            kernel_id = json.loads(response.body)["id"]
            assert gateway.service is not None
            connection = gateway.service.get(kernel_id).connection
            assert connection is not None

            url = gateway.url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
            legacy = await websocket_connect(url)
            v1 = await websocket_connect(url, subprotocols=[V1_PROTOCOL])
            paths = {
                "direct ZMQ": lambda: zmq_round(channels),
                "gateway websocket (legacy)": lambda: ws_round(legacy),
                "gateway websocket (v1)": lambda: ws_round(v1),
            }
            results: dict[str, list[float]] = {name: [] for name in paths}
            async with KernelChannels(connection, channels=("shell", "iopub")) as channels:
                await channels.nudge(TIMEOUT)
                for n in range(warmup + rounds):  # interleaved, so load changes hit every path alike
                    for name, one_round in paths.items():
                        seconds = await one_round()
                        if n >= warmup:
                            results[name].append(seconds)
            legacy.close()
            v1.close()
        finally:
            await gateway.stop()

    floor, line = summary("direct ZMQ", results.pop("direct ZMQ"))
    print(f"execute round trip of {CODE!r}, {rounds} rounds after {warmup} warm-up rounds")
    print(line)
    for name, seconds in results.items():
        median, line = summary(name, seconds)
        print(f"{line}   overhead {median - floor:+7.3f} ms   ratio {median / floor:5.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.rounds, args.warmup))
