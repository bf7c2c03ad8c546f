"""Benchmark: the simulated API server through the real client, over HTTPS.

Run: ``python bench/apiserver.py`` (options: ``--help``).  Prints, for the
simulated API server reached through ``KubernetesCluster`` (the ``kubernetes``
client, TLS, bearer token), and for two baselines measured in the same run:

* the floor: ``GET /version`` through the same adapter, the cheapest HTTPS
  round trip there is (no auth lookup, no store);
* the in-memory cluster: the same operations on ``MemoryCluster`` directly,
  no HTTP at all.

Figures: create/get/list throughput (ops/s, one at a time and concurrently)
and watch-event latency (from a create's response to the watch event's
arrival in the client's event loop, median and p95 in ms).  The server runs in
its own process, as a real API server does, so client and server each get a
core.  ``--profile server|client`` prints where time goes on that side.

This is a benchmark, not a test: it asserts nothing, it reports, and marks
the targets (watch delivery well under 5 ms, over 500 creates/s) met or missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fakes.memory import MemoryCluster  # noqa: E402
from fakes.state.store import Store  # noqa: E402
from gateway.cluster.interface import Cluster  # noqa: E402
from gateway.cluster.kubernetes import KubernetesCluster  # noqa: E402

WATCH_TARGET_MS = 5.0
CREATE_TARGET_PER_S = 500.0


# ---------------------------------------------------------------------- the server process


async def serve(state_dir: str, profile: bool) -> None:
    """The ``--serve`` mode: run the simulated API server until SIGTERM; print its kubeconfig path."""
    from fakes.serve import SimulatedCluster

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    profiler = cProfile.Profile(time.process_time) if profile else None  # CPU, not wall: the machine may be busy
    async with SimulatedCluster(node_agent=False, state_dir=state_dir, store=Store()) as sim:
        print(json.dumps({"kubeconfig": str(sim.kubeconfig_path)}), flush=True)
        if profiler:
            profiler.enable()
        await stop.wait()
        if profiler:
            profiler.disable()
    if profiler:
        print_profile(profiler, "server", sys.stderr)


class ServerProcess:
    """The simulated API server in a child process (this script with ``--serve``)."""

    def __init__(self, profile: bool) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="kernelgate-bench-")
        argv = [sys.executable, __file__, "--serve", self._dir.name]
        if profile:
            argv.append("--profile-serve")
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise SystemExit("the simulated API server did not start")
        self.kubeconfig = json.loads(line)["kubeconfig"]

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (Linux ``/proc``; 0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._dir.cleanup()


# ---------------------------------------------------------------------- measurements


@dataclass
class Figure:
    name: str
    value: float
    unit: str


async def timed(n: int, concurrency: int, op: Callable[[int], Awaitable[Any]]) -> tuple[float, list[float]]:
    """Run ``op(0..n-1)`` with ``concurrency`` in flight; return ops/s and each op's latency (s)."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - start), latencies


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def watch_latency(cluster: Cluster, ns: str, n: int) -> tuple[list[float], list[float]]:
    """Create ``n`` config maps one at a time under an open watch.

    Returns, per create, the time from its response to its event's arrival in
    this loop (negative when the event came first) and from its request to
    the event.
    """
    start_rv = (await cluster.list("configmaps", namespace=ns))["metadata"]["resourceVersion"]
    arrived: dict[str, float] = {}
    seen: dict[str, asyncio.Event] = {}
    stream = cluster.watch("configmaps", namespace=ns, resource_version=start_rv, timeout_seconds=300)

    async def follow() -> None:
        async for event in stream:
            name = event.object["metadata"]["name"]
            arrived[name] = time.perf_counter()
            if name in seen:
                seen[name].set()

    follower = asyncio.create_task(follow())
    after_response, after_request = [], []
    try:
        for i in range(n):
            name = f"w{i}"
            seen[name] = asyncio.Event()
            t0 = time.perf_counter()
            await cluster.create("configmaps", {"metadata": {"name": name}}, namespace=ns)
            t1 = time.perf_counter()
            await asyncio.wait_for(seen[name].wait(), 10)
            after_response.append(arrived[name] - t1)
            after_request.append(arrived[name] - t0)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        aclose = getattr(stream, "aclose", None)
        if aclose:
            await aclose()
    return after_response, after_request


async def measure(
    cluster: Cluster, label: str, scale: int, concurrency: int, server_cpu: Callable[[], float] = lambda: 0.0
) -> dict[str, Figure]:
    """Every figure for one cluster; ``scale`` sets the number of operations.

    ``server_cpu`` reads the server's CPU seconds, to split a create's cost
    between client and server."""
    run = f"bench-{label}-{os.getpid()}"
    for ns in (run, f"{run}-list", f"{run}-watch"):
        await cluster.create("namespaces", {"metadata": {"name": ns}})
    cm = {"metadata": {"name": ""}, "data": {"key": "value" * 20}}

    def create(prefix: str) -> Callable[[int], Awaitable[Any]]:
        return lambda i: cluster.create("configmaps", {**cm, "metadata": {"name": f"{prefix}-{i}"}}, namespace=run)

    figures: dict[str, Figure] = {}
    rate, lat = await timed(scale, 1, create("seq"))
    figures["create, one at a time"] = Figure("create, one at a time", rate, "ops/s")
    figures["create latency"] = Figure("create latency (median)", ms(lat, 0.5), "ms")
    client0, server0 = time.process_time(), server_cpu()
    rate, _ = await timed(2 * scale, concurrency, create("par"))
    client_ms = 1000 * (time.process_time() - client0) / (2 * scale)
    server_ms = 1000 * (server_cpu() - server0) / (2 * scale)
    figures["client cpu"] = Figure("client CPU per concurrent create", client_ms, "ms")
    figures["server cpu"] = Figure("server CPU per concurrent create", server_ms, "ms")
    figures["create, concurrent"] = Figure(f"create, {concurrency} concurrent", rate, "ops/s")
    rate, lat = await timed(scale, 1, lambda i: cluster.get("configmaps", f"seq-{i}", namespace=run))
    figures["get, one at a time"] = Figure("get, one at a time", rate, "ops/s")
    figures["get latency"] = Figure("get latency (median)", ms(lat, 0.5), "ms")
    rate, _ = await timed(2 * scale, concurrency, lambda i: cluster.get("configmaps", f"par-{i}", namespace=run))
    figures["get, concurrent"] = Figure(f"get, {concurrency} concurrent", rate, "ops/s")
    for i in range(50):
        await cluster.create("configmaps", {**cm, "metadata": {"name": f"l-{i}"}}, namespace=f"{run}-list")
    rate, _ = await timed(max(20, scale // 5), 1, lambda i: cluster.list("configmaps", namespace=f"{run}-list"))
    figures["list"] = Figure("list of 50, one at a time", rate, "ops/s")
    after_response, after_request = await watch_latency(cluster, f"{run}-watch", scale)
    figures["watch median"] = Figure("watch event after create response, median", ms(after_response, 0.5), "ms")
    figures["watch p95"] = Figure("watch event after create response, p95", ms(after_response, 0.95), "ms")
    figures["watch from request"] = Figure("watch event after create request, median", ms(after_request, 0.5), "ms")
    return figures


async def floor(cluster: KubernetesCluster, scale: int, concurrency: int) -> dict[str, Figure]:
    """The cheapest HTTPS round trip through the same adapter."""
    rate, lat = await timed(scale, 1, lambda i: cluster.version())
    par, _ = await timed(2 * scale, concurrency, lambda i: cluster.version())
    return {
        "one at a time": Figure("GET /version, one at a time", rate, "ops/s"),
        "latency": Figure("GET /version latency (median)", ms(lat, 0.5), "ms"),
        "concurrent": Figure(f"GET /version, {concurrency} concurrent", par, "ops/s"),
    }


# ---------------------------------------------------------------------- report


def print_profile(profiler: cProfile.Profile, side: str, out: Any) -> None:
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
    print(f"\n--- where the {side} spends its time (cumulative, top 30) ---\n{text.getvalue()}", file=out)


def report(api: dict[str, Figure], memory: dict[str, Figure], base: dict[str, Figure]) -> None:
    print(f"\n{'figure':48} {'apiserver':>12} {'memory':>12} {'memory/api':>11}")
    for key, fig in api.items():
        if key in ("client cpu", "server cpu"):
            continue
        mem = memory[key].value
        ratio = (mem / fig.value) if fig.unit == "ops/s" else (fig.value / mem if mem else float("inf"))
        print(f"{fig.name:48} {fig.value:9.1f} {fig.unit:>5} {mem:9.1f} {'':>3} {ratio:9.1f}x")
    print("\nfloor (HTTPS round trip through the same client):")
    for fig in base.values():
        print(f"  {fig.name:46} {fig.value:9.1f} {fig.unit}")
    print(
        f"\ncreate latency / floor latency: {api['create latency'].value / base['latency'].value:.1f}x;"
        f"  get latency / floor latency: {api['get latency'].value / base['latency'].value:.1f}x"
    )
    client_cpu, server_cpu = api["client cpu"].value, api["server cpu"].value
    if server_cpu:
        print(
            f"CPU per create: client {client_cpu:.2f} ms, server {server_cpu:.2f} ms; with a core each and nothing"
            f" else running, the busier side allows about {1000 / max(client_cpu, server_cpu):.0f} creates/s"
        )
    watch, creates = api["watch median"].value, api["create, concurrent"].value
    print(
        f"\ntargets: watch delivery median {watch:.2f} ms (< {WATCH_TARGET_MS} ms: "
        f"{'met' if watch < WATCH_TARGET_MS else 'MISSED'}); "
        f"creates {creates:.0f}/s (> {CREATE_TARGET_PER_S:.0f}/s: {'met' if creates > CREATE_TARGET_PER_S else 'MISSED'})"
    )


async def main(args: argparse.Namespace) -> None:
    server = ServerProcess(profile=args.profile == "server")
    client_profiler = cProfile.Profile(time.process_time) if args.profile == "client" else None
    try:
        cluster = KubernetesCluster.from_kubeconfig(server.kubeconfig, max_workers=args.concurrency)
        try:
            await cluster.version()  # connect and warm up TLS before measuring
            if client_profiler:
                client_profiler.enable()
            base = await floor(cluster, args.scale, args.concurrency)
            api = await measure(cluster, "api", args.scale, args.concurrency, server.cpu_seconds)
            if client_profiler:
                client_profiler.disable()
        finally:
            await cluster.close()
        memory_cluster = MemoryCluster(Store())
        memory = await measure(memory_cluster, "memory", args.scale, args.concurrency)
        await memory_cluster.close()
    finally:
        server.stop()
    report(api, memory, base)
    if client_profiler:
        print_profile(client_profiler, "client", sys.stdout)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=300, help="operations per figure (default 300)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight for the concurrent figures")
    parser.add_argument("--profile", choices=["server", "client"], help="print where time goes on one side")
    parser.add_argument("--serve", metavar="STATE_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--profile-serve", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        asyncio.run(serve(arguments.serve, arguments.profile_serve))
    else:
        asyncio.run(main(arguments))
