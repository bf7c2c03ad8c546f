"""Kernel starts through kernelgate against their floor, measured in the same run, as ratios.

    python bench/kernel_starts.py [--quick]         # or: make bench

The floor is ``jupyter_client`` starting the same ipykernel on this machine with no gateway
and no cluster (:mod:`bench.starts`).  kernelgate runs as an operator runs it: ``kernelgate
cluster`` (the simulated API server and a node agent running kernel pods as processes) and
``kernelgate serve`` on it, each in a process of its own (:mod:`bench.procs`).  Figures:

* a kernel pod's memory (the RSS of all its processes) / a bare ipykernel's;
* start -> ready, one at a time (medians, floor and gateway starts interleaved), and 8 and 32
  at once (the time until the last is ready; the median of a few such batches), with any failures;
* the gateway's CPU time per start, and the same against a bare kernel's own CPU to start (the
  floor's, in the same run): this machine's speed drifts by a third from one hour to the next,
  the two figures with it, so their ratio is what shows a change in the gateway;
* with many idle kernels: the gateway's Kubernetes API requests and CPU over an idle window
  (against the same window with no kernel), and its RSS growth per kernel.

Then the simulated scale (:mod:`bench.scale`).  Targets are printed beside each figure; nothing
fails on them.  Results go to ``bench/results/kernel_starts.json`` with the last runs kept.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scale  # noqa: E402
from bench.history import change, record  # noqa: E402
from bench.procs import ClusterProcess, GatewayProcess, cpu_seconds, rss_kib, run_seconds  # noqa: E402
from bench.starts import (  # noqa: E402
    FLOOR_OUTPUT,
    Batch,
    GatewayClient,
    Started,
    bare_start,
    round_figures,
    run_batch,
    run_rounds,
    stop_all,
)

SETTLE = 1.0
"""Seconds after ready before a kernel's memory is read (the same for both paths)."""


@dataclass(frozen=True)
class Budget:
    sequential: int
    idle_kernels: int
    idle_window: float
    rounds: tuple[tuple[int, int], ...] = ((8, 3), (32, 1))
    """(starts at once, batches of them): the makespan reported is the median batch's."""


FULL = Budget(sequential=10, idle_kernels=200, idle_window=30.0, rounds=((8, 3), (32, 2)))
QUICK = Budget(sequential=3, idle_kernels=40, idle_window=10.0)


def mib(kib: float) -> float:
    return kib / 1024


async def sequential(client: GatewayClient, gateway: GatewayProcess, n: int, figures: dict) -> None:
    floor: list[Started] = []
    ours: list[Started] = []
    floor_rss: list[int] = []
    pod_rss: list[int] = []
    pod_processes: list[int] = []
    cpu = 0.0
    for _ in range(n):  # interleaved, so that the machine's load hits both alike
        started = await bare_start()
        await asyncio.sleep(SETTLE)
        floor_rss.append(started.rss_kib())
        floor.append(started)
        await started.stop()
        before = run_seconds(gateway.pid)
        started = await client.start()
        cpu += run_seconds(gateway.pid) - before
        await asyncio.sleep(SETTLE)
        pod_rss.append(started.rss_kib())
        pod_processes.append(len(started.pids()))
        ours.append(started)
        await started.stop()
    figures["floor_start_s"] = statistics.median(s.seconds for s in floor)
    figures["start_s"] = statistics.median(s.seconds for s in ours)
    figures["start_ratio"] = figures["start_s"] / figures["floor_start_s"]
    figures["floor_rss_mib"] = mib(statistics.median(floor_rss))
    figures["pod_rss_mib"] = mib(statistics.median(pod_rss))
    figures["pod_processes"] = max(pod_processes)
    figures["memory_ratio"] = figures["pod_rss_mib"] / figures["floor_rss_mib"]
    figures["gateway_cpu_ms_per_start"] = 1000 * cpu / n
    figures["floor_kernel_cpu_ms"] = 1000 * statistics.median(s.kernel_cpu_s for s in floor)
    figures["pod_cpu_ms"] = 1000 * statistics.median(s.kernel_cpu_s for s in ours)
    if figures["floor_kernel_cpu_ms"]:
        figures["gateway_cpu_per_kernel_cpu"] = figures["gateway_cpu_ms_per_start"] / figures["floor_kernel_cpu_ms"]


async def concurrent(client: GatewayClient, gateway: GatewayProcess, cluster: ClusterProcess, n: int, rounds: int,
                     figures: dict) -> None:
    """``rounds`` batches of ``n`` starts at once on each side, interleaved (:func:`bench.starts.run_rounds`)."""
    spent = {"gateway": 0.0, "cluster": 0.0}

    async def one_round() -> tuple[Batch, Batch]:
        floor = await run_batch(bare_start, n)
        await stop_all(floor.started)
        before, cluster_before = run_seconds(gateway.pid), cpu_seconds(cluster.proc.pid)
        ours = await run_batch(client.start, n)
        spent["gateway"] += run_seconds(gateway.pid) - before
        spent["cluster"] += cpu_seconds(cluster.proc.pid) - cluster_before
        await stop_all(ours.started)
        return floor, ours

    ran, whole = await run_rounds(rounds, one_round)
    our_started = [s for _, ours in ran for s in ours.started]
    floor_started = [s for floor, _ in ran for s in floor.started]
    our_failures = [f for _, ours in ran for f in ours.failures]
    floor_failures = [f for floor, _ in ran for f in floor.failures]
    cpu, cluster_cpu = spent["gateway"] / len(ran), spent["cluster"] / len(ran)
    if our_started and floor_started:
        figures[f"concurrent{n}_pod_cpu_ms"] = 1000 * statistics.median(s.kernel_cpu_s for s in our_started)
        figures[f"floor_concurrent{n}_kernel_cpu_ms"] = 1000 * statistics.median(s.kernel_cpu_s for s in floor_started)
    figures[f"concurrent{n}_cluster_cpu_ms_per_start"] = 1000 * cluster_cpu / n
    figures.update(round_figures(n, ran, whole))
    figures[f"concurrent{n}_gateway_cpu_ms_per_start"] = 1000 * cpu / n
    for failure in our_failures[:3]:
        print(f"  kernelgate start failed: {failure}")
    for failure in floor_failures[:3]:
        print(f"  bare start failed: {failure} (its kernel's output: {FLOOR_OUTPUT})")


async def idle_window(gateway: GatewayProcess, seconds: float) -> tuple[int, int, float]:
    """API requests (but lease renewals), lease renewals and CPU percent of the gateway over ``seconds`` with
    nothing asked of it.  The replica renews its lease every few seconds whatever it serves: a window holds
    one renewal more or less as it falls, which is not the kernels' doing."""
    before, cpu = await gateway.counters(), cpu_seconds(gateway.pid)
    await asyncio.sleep(seconds)
    after = await gateway.counters()
    leases = after["lease_requests"] - before["lease_requests"]
    return after["api_requests"] - before["api_requests"] - leases, leases, \
        100 * (cpu_seconds(gateway.pid) - cpu) / seconds


async def idle(client: GatewayClient, gateway: GatewayProcess, budget: Budget, figures: dict) -> None:
    await asyncio.sleep(5)  # the stops before (the batches') finish their own requests before the baseline window
    figures["idle0_api_requests"], figures["idle0_lease_requests"], figures["idle0_cpu_percent"] = \
        await idle_window(gateway, budget.idle_window)
    rss_before = rss_kib(gateway.pid)
    started: list[Started] = []
    failures = 0
    while len(started) + failures < budget.idle_kernels:
        batch = await run_batch(client.start, min(8, budget.idle_kernels - len(started) - failures))
        started += batch.started
        failures += len(batch.failures)
    await asyncio.sleep(5)  # let the starts' own work (records, events) finish before the window
    requests, leases, cpu = await idle_window(gateway, budget.idle_window)
    figures["idle_kernels"] = len(started)
    figures["idle_start_failures"] = failures
    figures["idle_api_requests"] = requests
    figures["idle_lease_requests"] = leases
    figures["idle_api_requests_for_kernels"] = requests - figures["idle0_api_requests"]
    figures["idle_cpu_percent"] = cpu
    figures["gateway_rss_mib_per_kernel"] = mib(rss_kib(gateway.pid) - rss_before) / max(len(started), 1)
    for i in range(0, len(started), 16):
        await stop_all(started[i:i + 16])


TARGETS = [
    # (figure, label, unit, target, how the target reads)
    ("memory_ratio", "kernel pod memory / bare ipykernel", "x", 1.05, "<="),
    ("start_ratio", "start -> ready, sequential / floor", "x", 1.10, "<="),
    ("concurrent8_ratio", "8 concurrent / floor", "x", 1.15, "<="),
    ("concurrent32_ratio", "32 concurrent / floor", "x", 1.20, "<="),
    ("concurrent8_failures", "8 concurrent: kernelgate starts failed", "", 0, "<="),
    ("concurrent32_failures", "32 concurrent: kernelgate starts failed", "", 0, "<="),
    ("gateway_cpu_ms_per_start", "gateway CPU per start", "ms", 10.0, "<="),
    ("idle_api_requests_for_kernels", "idle kernels: API requests in the window", "", 0, "<="),
    ("gateway_rss_mib_per_kernel", "idle kernels: gateway RSS per kernel", "MiB", 0.2, "<="),
    ("idle_cpu_percent", "idle kernels: gateway CPU", "%", 0.5, "<"),
]


def report(figures: dict, before: dict | None) -> None:
    f = figures
    print(f"floor: bare ipykernel {f['floor_rss_mib']:.1f} MiB, start -> ready {f['floor_start_s'] * 1000:.0f} ms; "
          f"8 at once {f['floor_concurrent8_s']:.2f} s ({f['floor_concurrent8_failures']} failed), "
          f"32 at once {f['floor_concurrent32_s']:.2f} s ({f['floor_concurrent32_failures']} failed); "
          f"rounds with every start ready on both sides: {f['concurrent8_rounds_compared']} at 8, "
          f"{f['concurrent32_rounds_compared']} at 32 (the ratios compare those)")
    print(f"kernelgate: kernel pod {f['pod_rss_mib']:.1f} MiB in {f['pod_processes']} process(es), start -> ready "
          f"{f['start_s'] * 1000:.0f} ms; 8 at once {f['concurrent8_s']:.2f} s "
          f"({f['concurrent8_failures']} failed), 32 at once {f['concurrent32_s']:.2f} s "
          f"({f['concurrent32_failures']} failed); CPU per start at 32 at once "
          f"{f['concurrent32_gateway_cpu_ms_per_start']:.1f} ms")
    print(f"CPU per start at 32 at once: gateway {f['concurrent32_gateway_cpu_ms_per_start']:.0f} ms, simulated "
          f"cluster (API server, node agent) {f['concurrent32_cluster_cpu_ms_per_start']:.0f} ms, kernel pod "
          f"{f.get('concurrent32_pod_cpu_ms', 0):.0f} ms against a bare kernel's "
          f"{f.get('floor_concurrent32_kernel_cpu_ms', 0):.0f} ms")
    if "idle_kernels" in f:
        print(f"idle: {f['idle_kernels']} kernels ({f['idle_start_failures']} failed to start): "
              f"{f['idle_api_requests']} API requests and {f.get('idle_lease_requests', 0)} lease renewals "
              f"(none running: {f['idle0_api_requests']} and {f.get('idle0_lease_requests', 0)}), "
              f"CPU {f['idle_cpu_percent']:.2f} % (none running: {f['idle0_cpu_percent']:.2f} %)")
    ratio = f.get("gateway_cpu_per_kernel_cpu")
    if ratio is not None:
        earlier = (before or {}).get("figures", {})
        was = earlier.get("gateway_cpu_per_kernel_cpu")
        if was is None and earlier.get("floor_kernel_cpu_ms"):  # a run kept before the ratio was
            was = earlier["gateway_cpu_ms_per_start"] / earlier["floor_kernel_cpu_ms"]
        print(f"gateway CPU per start, one at a time, against a bare kernel's own start CPU "
              f"({f['floor_kernel_cpu_ms']:.0f} ms): {ratio:.4f}" + ("" if was is None else f"  (was {was:.4f})"))
    print()
    print(f"{'figure':<44} {'value':>10}   target")
    for key, label, unit, target, how in TARGETS:
        value = f.get(key)
        if value is None:
            continue
        within = value <= target if how == "<=" else value < target
        print(f"{label:<44} {value:>9.3g}{unit:<3} {how} {target:g}{unit}  {'within' if within else 'OVER'}"
              f"  {change(value, before, key)}")


async def main(args: argparse.Namespace) -> None:
    budget = QUICK if args.quick else FULL
    figures: dict = {}
    begin = time.monotonic()
    if not args.skip_starts:
        await starts(args, budget, figures, begin)
    scaled = False
    if not args.skip_scale:
        try:
            figures.update(await scale.run(quick=args.quick))
            scaled = True
        except Exception as exc:  # the figures measured so far are still reported and kept
            print(f"simulated scale failed: {exc}")
        print(f"[scale done at {time.monotonic() - begin:.0f}s]", flush=True)
    figures = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}
    before = record("kernel_starts", figures, quick=args.quick)
    print()
    if not args.skip_starts:
        report(figures, before)
    if scaled:
        scale.report(figures, before)
    print(f"\n{time.monotonic() - begin:.0f} s; results in bench/results/kernel_starts.json")


async def starts(args: argparse.Namespace, budget: Budget, figures: dict, begin: float) -> None:
    cluster = ClusterProcess()
    try:
        gateway = GatewayProcess(cluster.kubeconfig)
        try:
            client = GatewayClient(gateway.url)
            warm = await client.start()  # the first start pays the gateway's and the node's lazy set-up
            await warm.stop()
            await (await bare_start()).stop()
            await sequential(client, gateway, budget.sequential, figures)
            print(f"[sequential done at {time.monotonic() - begin:.0f}s]", flush=True)
            for n, rounds in budget.rounds:
                await concurrent(client, gateway, cluster, n, rounds, figures)
                print(f"[{n} concurrent done at {time.monotonic() - begin:.0f}s]", flush=True)
            if not args.skip_idle:
                await idle(client, gateway, budget, figures)
                print(f"[idle done at {time.monotonic() - begin:.0f}s]", flush=True)
        finally:
            gateway.stop()
    finally:
        cluster.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer starts and idle kernels, a smaller scale")
    parser.add_argument("--skip-idle", action="store_true", help="leave out the idle kernels")
    parser.add_argument("--skip-scale", action="store_true", help="leave out the simulated scale")
    parser.add_argument("--skip-starts", action="store_true", help="the simulated scale only")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parser.parse_args()))
