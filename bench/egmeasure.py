"""What ``bench/eg_starts.py`` measures, the same way for kernelgate and for Enterprise Gateway.

A :class:`Side` is one gateway with its own floor: kernelgate's is ``jupyter_client`` 8 starting
ipykernel 7 in this environment (:func:`bench.starts.bare_start`); EG's is its own
``jupyter_client`` 6 starting the ipykernel its ``elyra/kernel-py`` pods run (``bench/egfloor.py``,
in EG's environment).  Each figure is measured on the gateway and on its floor in turn, batch by
batch, so that the machine's load hits both alike:

* :func:`starts`: batches of starts at once (1 for the sequential figures), each until ready,
  the kernels' memory one second after, the gateway's CPU over the batch: its own, and apart
  that of the children it waited for (EG runs ``launch_kubernetes.py`` in a process per start);
* :func:`roundtrips`: an execute round trip (``1+1`` until its ``execute_reply`` and ``idle``)
  over each gateway's websocket, both gateways' kernels alternating.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from tornado.websocket import WebSocketClientConnection, websocket_connect

from bench.procs import cpu_split
from bench.starts import TIMEOUT, GatewayClient, Started, bare_start, round_figures, run_batch, run_rounds, stop_all

SETTLE = 1.0
"""Seconds after ready before the kernels' memory is read (the same on every path)."""


@dataclass
class Measured:
    """One batch: each start's time, CPU at ready and memory after :data:`SETTLE`, and the failures."""

    seconds: list[float] = field(default_factory=list)
    kernel_cpu_s: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)
    makespan: float = 0.0
    failures: list[str] = field(default_factory=list)
    gateway_cpu_s: float = 0.0
    """The gateway process's own CPU over the batch."""
    launcher_cpu_s: float = 0.0
    """Its children's over the batch (EG's ``launch_kubernetes.py``, one process per start; kernelgate has none)."""


@dataclass
class Side:
    """One gateway, its client, the process whose CPU is its, and its floor (a batch of bare starts)."""

    name: str
    client: GatewayClient
    pid: int
    floor: Callable[[int], Awaitable[Measured]]


async def gateway_batch(side: Side, n: int) -> Measured:
    """``n`` starts at once through ``side``'s gateway, their memory after :data:`SETTLE`, then their stops."""
    own, children = cpu_split(side.pid)
    batch = await run_batch(side.client.start, n)
    own_after, children_after = cpu_split(side.pid)
    measured = Measured(gateway_cpu_s=own_after - own, launcher_cpu_s=children_after - children,
                        makespan=batch.makespan, failures=batch.failures)
    return await settled_and_stopped(measured, batch.started)


async def kernelgate_floor(n: int) -> Measured:
    """kernelgate's floor: ``n`` bare starts in this environment (:func:`bench.starts.bare_start`)."""
    batch = await run_batch(bare_start, n)
    return await settled_and_stopped(Measured(makespan=batch.makespan, failures=batch.failures), batch.started)


async def settled_and_stopped(measured: Measured, started: list[Started]) -> Measured:
    """``measured`` with each started kernel's time, CPU, and memory and processes after :data:`SETTLE`;
    the kernels stopped."""
    await asyncio.sleep(SETTLE)
    for kernel in started:
        measured.seconds.append(kernel.seconds)
        measured.kernel_cpu_s.append(kernel.kernel_cpu_s)
        measured.rss_kib.append(kernel.rss_kib())
        measured.processes.append(len(kernel.pids()))
    await stop_all(started)
    return measured


def eg_floor(python: Path, kernel_python: Path) -> Callable[[int], Awaitable[Measured]]:
    """EG's floor: ``bench/egfloor.py`` run by EG's environment's ``python``, one process per batch."""
    script = Path(__file__).resolve().parent / "egfloor.py"

    async def floor(n: int) -> Measured:
        done = await asyncio.to_thread(
            subprocess.run, [str(python), str(script), "--kernel-python", str(kernel_python), "--concurrency", str(n),
                             "--settle", str(SETTLE)],
            capture_output=True, text=True, timeout=TIMEOUT + 60)
        if done.returncode != 0:
            raise RuntimeError(f"EG's floor failed:\n{done.stderr[-2000:]}")
        data = json.loads(done.stdout.strip().splitlines()[-1])
        return Measured(seconds=data["seconds"], kernel_cpu_s=data["kernel_cpu_s"], rss_kib=data["rss_kib"],
                        processes=[1] * len(data["seconds"]), makespan=data["makespan"], failures=data["failures"])

    return floor


def mib(kib: float) -> float:
    return kib / 1024


async def sequential(side: Side, n: int, figures: dict) -> None:
    """``n`` starts one at a time, gateway and floor in turn: medians of time, memory and CPU."""
    floor: list[Measured] = []
    ours: list[Measured] = []
    for _ in range(n):
        floor.append(await side.floor(1))
        ours.append(await gateway_batch(side, 1))
    for who, batches in (("floor_", floor), ("", ours)):
        if sum(len(b.seconds) for b in batches) == 0:
            raise RuntimeError(f"{side.name}: no {who or 'gateway '}start succeeded: {batches[0].failures[:1]}")
        figures[f"{who}start_s"] = statistics.median(s for b in batches for s in b.seconds)
        figures[f"{who}rss_mib"] = mib(statistics.median(r for b in batches for r in b.rss_kib))
        figures[f"{who}kernel_cpu_ms"] = 1000 * statistics.median(c for b in batches for c in b.kernel_cpu_s)
        figures[f"{who}processes"] = max(p for b in batches for p in b.processes)
        figures[f"{who}failures"] = sum(len(b.failures) for b in batches)
    figures["start_ratio"] = figures["start_s"] / figures["floor_start_s"]
    figures["memory_ratio"] = figures["rss_mib"] / figures["floor_rss_mib"]
    figures["gateway_cpu_ms_per_start"] = 1000 * sum(b.gateway_cpu_s for b in ours) / n
    figures["launcher_cpu_ms_per_start"] = 1000 * sum(b.launcher_cpu_s for b in ours) / n


async def concurrent(side: Side, n: int, rounds: int, figures: dict) -> None:
    """``rounds`` batches of ``n`` starts at once, floor and gateway in turn: the median whole round's makespans
    (:func:`bench.starts.run_rounds`)."""

    async def one_round() -> tuple[Measured, Measured]:
        floor = await side.floor(n)
        return floor, await gateway_batch(side, n)

    ran, whole = await run_rounds(rounds, one_round)
    figures.update(round_figures(n, ran, whole))
    figures[f"concurrent{n}_gateway_cpu_ms_per_start"] = 1000 * sum(o.gateway_cpu_s for _, o in ran) / (n * len(ran))
    figures[f"concurrent{n}_launcher_cpu_ms_per_start"] = 1000 * sum(o.launcher_cpu_s for _, o in ran) / (n * len(ran))
    for failure in [f for _, ours in ran for f in ours.failures][:3]:
        print(f"  {side.name} start failed: {failure}")
    for failure in [f for floor, _ in ran for f in floor.failures][:3]:
        print(f"  {side.name}'s floor: bare start failed: {failure}")


async def _execute(ws: WebSocketClientConnection) -> float:
    """One ``execute_request`` of ``1+1`` until both its ``execute_reply`` and its ``idle`` status arrived."""
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "bench", "session": "bench",
              "date": "2026-01-01T00:00:00Z", "version": "5.3"}
    content = {"code": "1+1", "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False,
               "stop_on_error": True}
    begin = time.perf_counter()
    await ws.write_message(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content,
                                       "channel": "shell"}))
    replied = idle = False
    while not (replied and idle):
        frame = await asyncio.wait_for(ws.read_message(), TIMEOUT)
        if frame is None:
            raise ConnectionError("the gateway closed the websocket")
        msg = json.loads(frame)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        replied = replied or msg["header"]["msg_type"] == "execute_reply"
        idle = idle or (msg["header"]["msg_type"] == "status" and msg["content"].get("execution_state") == "idle")
    return time.perf_counter() - begin


async def roundtrips(sides: list[Side], rounds: int, figures: dict[str, dict]) -> None:
    """Median and 90th percentile execute round trip (ms) through each side's websocket, sides alternating."""
    kernels: list[Started] = []
    sockets: list[WebSocketClientConnection] = []
    try:
        for side in sides:
            kernels.append(await side.client.start())
            url = side.client.url.replace("http://", "ws://") + f"/api/kernels/{kernels[-1].kernel_id}/channels"
            sockets.append(await asyncio.wait_for(websocket_connect(url), TIMEOUT))
        times: list[list[float]] = [[] for _ in sides]
        for i in range(rounds + 5):  # the first few warm both paths up
            for j, ws in enumerate(sockets):
                seconds = await _execute(ws)
                if i >= 5:
                    times[j].append(seconds)
        for side, measured in zip(sides, times, strict=True):
            ordered = sorted(measured)
            figures[side.name]["roundtrip_ms"] = 1000 * statistics.median(ordered)
            figures[side.name]["roundtrip_p90_ms"] = 1000 * ordered[int(0.9 * (len(ordered) - 1))]
    finally:
        for ws in sockets:
            ws.close()
        await stop_all(kernels)
