"""One kernel start -> ready, bare (the floor) or through the gateway, and the memory of what it started.

*Ready* is the same on both paths: the kernel has answered a ``kernel_info_request`` sent by
the client that started it.  The floor is ``jupyter_client``'s :class:`AsyncKernelManager`
starting the same ``ipykernel`` on this machine (``python -m ipykernel_launcher -f ...``)
and a client waiting for that answer; through the gateway it is ``POST /api/kernels``, then a
websocket on the kernel's channels and the same request over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol, TypeVar

import zmq
from jupyter_client.manager import AsyncKernelManager
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from bench.procs import cpu_seconds, pids_with_env, rss_kib

TIMEOUT = 180.0
"""Bound on one start on a loaded two-core machine (32 at once take tens of seconds)."""
SEND_TIMEOUT = 10.0
"""Longest a floor start's blocking send to its kernel may take."""
FLOOR_OUTPUT = Path(tempfile.gettempdir()) / "kernelgate-bench-floor-kernels.log"
"""Where the floor's kernels write their own output (ipykernel's start-up warnings, a failed bind's
traceback), as a kernel pod's goes to its container log: not between the benchmark's lines."""


@dataclass
class Started:
    """One started kernel: how long it took, and how to read its memory and stop it."""

    seconds: float
    kernel_id: str
    pids: Callable[[], list[int]]
    stop: Callable[[], Awaitable[None]]
    kernel_cpu_s: float = 0.0
    """CPU time of the kernel's processes when it was ready: what starting it cost inside the pod."""

    def rss_kib(self) -> int:
        return sum(rss_kib(pid) for pid in self.pids())


@dataclass
class Batch:
    """Starts run together: each one's time, the batch's makespan, and the failures."""

    started: list[Started] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    makespan: float = 0.0


async def run_batch(start: Callable[[], Awaitable[Started]], concurrency: int) -> Batch:
    """``concurrency`` starts at once; the makespan is the time until the last successful one was ready."""
    begin = time.perf_counter()
    batch = Batch()

    async def one() -> None:
        try:
            started = await start()
        except Exception as exc:  # counted and reported; a failure's time is not a start's
            batch.failures.append(f"{type(exc).__name__}: {exc}")
            return
        batch.started.append(started)
        batch.makespan = max(batch.makespan, time.perf_counter() - begin)

    await asyncio.gather(*(one() for _ in range(concurrency)))
    return batch


ROUND_ATTEMPTS = 3
"""Tries of one round of starts at once until neither side lost a start (see :func:`run_rounds`)."""


class Outcome(Protocol):
    """What :func:`run_rounds` reads of a side's batch."""

    failures: list[str]
    makespan: float


B = TypeVar("B", bound=Outcome)


async def run_rounds(rounds: int, one_round: Callable[[], Awaitable[tuple[B, B]]],
                     ) -> tuple[list[tuple[B, B]], list[tuple[B, B]]]:
    """``rounds`` rounds of (floor, gateway) batches at once: every round run, and the whole ones.

    A batch that lost a start ends when its last *successful* start is ready, which flatters
    it: a round in which either side lost one is run again, up to :data:`ROUND_ATTEMPTS` times.
    The caller counts the failures of every round run and compares the makespans of the whole
    ones (of the last round run, should none come whole): :func:`round_figures`.
    """
    ran: list[tuple[B, B]] = []
    whole: list[tuple[B, B]] = []
    for _ in range(rounds):
        for _attempt in range(ROUND_ATTEMPTS):
            floor, ours = pair = await one_round()
            ran.append(pair)
            if not floor.failures and not ours.failures:
                whole.append(pair)
                break
    return ran, whole


def round_figures(n: int, ran: list[tuple[B, B]], whole: list[tuple[B, B]]) -> dict[str, float]:
    """What both benchmarks report of :func:`run_rounds`' rounds of ``n`` starts at once: each side's median
    makespan over the whole rounds (over the last round run, should none be whole) and their ratio, how many
    rounds were compared, and every failure of each side."""
    compared = whole or ran[-1:]
    floor_s = statistics.median(floor.makespan for floor, _ in compared)
    ours_s = statistics.median(ours.makespan for _, ours in compared)
    return {
        f"floor_concurrent{n}_s": floor_s,
        f"concurrent{n}_s": ours_s,
        f"concurrent{n}_ratio": ours_s / floor_s,
        f"concurrent{n}_rounds_compared": len(whole),
        f"concurrent{n}_failures": sum(len(ours.failures) for _, ours in ran),
        f"floor_concurrent{n}_failures": sum(len(floor.failures) for floor, _ in ran),
    }


async def stop_all(started: list[Started]) -> None:
    await asyncio.gather(*(s.stop() for s in started), return_exceptions=True)


# ---------------------------------------------------------------------------- the floor

_floor_output: IO[bytes] | None = None
_next_port = 0


def floor_ports(count: int = 5) -> list[int]:
    """``count`` free ports below the system's ephemeral range, a different run of them each call.

    jupyter_client picks a kernel's ports by binding port 0 and letting go (from the ephemeral
    range), and the kernel binds them a moment later: an outgoing connection made meanwhile (the
    client's own to the kernels starting beside it) may take one, and that kernel dies or hangs
    (hung, its start fails only at :data:`TIMEOUT`).  No connection is ever given a port below
    the range, so the floor's kernels get theirs there.
    """
    global _next_port
    low = _ephemeral_low()
    first = max(10000, low // 3)
    ports: list[int] = []
    while len(ports) < count:
        if not first <= _next_port < low:
            _next_port = first
        port, _next_port = _next_port, _next_port + 1
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # something listens there: the next
        ports.append(port)
    return ports


@functools.cache
def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def floor_output() -> IO[bytes]:
    """The file the floor's kernels write to, emptied by the first start of a run (see :data:`FLOOR_OUTPUT`)."""
    global _floor_output
    if _floor_output is None:
        _floor_output = open(FLOOR_OUTPUT, "wb", buffering=0)  # noqa: SIM115 - one for the run, closed at exit
    return _floor_output


async def bare_start() -> Started:
    """The floor: jupyter_client starts ipykernel and waits for its kernel_info reply."""
    manager = AsyncKernelManager(kernel_name="python3", cache_ports=False)
    manager.shell_port, manager.iopub_port, manager.stdin_port, manager.hb_port, manager.control_port = floor_ports()
    output = floor_output()
    begin = time.perf_counter()
    try:
        await manager.start_kernel(stdout=output, stderr=output)
        client = manager.client()
        client.start_channels()
        # jupyter_client sends its kernel_info_requests with a blocking ZeroMQ send on the event
        # loop; one that never completed once hung a whole run: bound it, the start then fails.
        client.shell_channel.socket.setsockopt(zmq.SNDTIMEO, int(SEND_TIMEOUT * 1000))
        try:
            await client.wait_for_ready(timeout=TIMEOUT)
        finally:
            client.stop_channels()
    except BaseException:  # a failed start is counted, not timed: its kernel must not outlive the run
        with contextlib.suppress(Exception):
            await manager.shutdown_kernel(now=True)
        raise
    seconds = time.perf_counter() - begin
    provisioner = manager.provisioner
    pid = provisioner.process.pid if provisioner is not None and provisioner.process is not None else 0  # type: ignore[attr-defined]

    async def stop() -> None:
        await manager.shutdown_kernel(now=True)

    return Started(seconds, manager.kernel_id or "", lambda: [pid] if pid else [], stop, cpu_seconds(pid))


# ---------------------------------------------------------------------------- through the gateway


class GatewayClient:
    """Starts and stops kernels through one gateway's REST and websocket API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = AsyncHTTPClient(max_clients=128)

    async def fetch(self, path: str, method: str = "GET", body: object = None) -> object:
        request = HTTPRequest(self.url + path, method=method, body=None if body is None else json.dumps(body),
                              request_timeout=TIMEOUT)
        response = await self.http.fetch(request)
        return json.loads(response.body) if response.body else None

    async def start(self) -> Started:
        begin = time.perf_counter()
        kernel = await self.fetch("/api/kernels", "POST", {"env": {"KERNEL_USERNAME": "bench"}})
        assert isinstance(kernel, dict)
        kernel_id = kernel["id"]
        await self.kernel_info(kernel_id)
        seconds = time.perf_counter() - begin

        async def stop() -> None:
            await self.fetch(f"/api/kernels/{kernel_id}", "DELETE")

        pids = pids_with_env("KERNEL_ID", kernel_id)
        return Started(seconds, kernel_id, lambda: pids_with_env("KERNEL_ID", kernel_id), stop,
                       sum(cpu_seconds(pid) for pid in pids))

    async def kernel_info(self, kernel_id: str) -> None:
        """A kernel_info_request over the kernel's websocket, until its reply."""
        ws_url = self.url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
        ws = await asyncio.wait_for(websocket_connect(ws_url), TIMEOUT)
        try:
            msg_id = uuid.uuid4().hex
            header = {"msg_id": msg_id, "msg_type": "kernel_info_request", "username": "bench", "session": "bench",
                      "date": "2026-01-01T00:00:00Z", "version": "5.3"}
            ws.write_message(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": {},
                                         "channel": "shell"}))
            while True:
                frame = await asyncio.wait_for(ws.read_message(), TIMEOUT)
                if frame is None:
                    raise ConnectionError("the gateway closed the websocket")
                msg = json.loads(frame)
                if msg.get("parent_header", {}).get("msg_id") == msg_id and msg["header"]["msg_type"] == "kernel_info_reply":
                    return
        finally:
            ws.close()
