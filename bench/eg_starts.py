"""Kernel starts through kernelgate and through Enterprise Gateway 3.3, each against its own floor, in one run.

    python bench/eg_starts.py [--quick]         # or: make bench-eg

Both gateways run on one simulated cluster (``kernelgate cluster``, its node running kernel pods
as local processes): kernelgate as ``bench/kernel_starts.py`` runs it, EG as its Helm chart
deploys it (:mod:`bench.egcluster`), from a virtual environment of its own in the cache
(:mod:`bench.egstack`), starting its ``python_kubernetes`` kernelspec's ``elyra/kernel-py`` pods.
Each gateway has its own floor, a bare ``jupyter_client`` start of the ipykernel of its own
stack (:mod:`bench.egmeasure`), measured batch by batch beside it.  Printed: for each figure,
kernelgate's and EG's value and ratio to their floor, and kernelgate / EG.  Results go to
``bench/results/eg_starts.json`` with the last runs kept.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.egcluster import EGProcess, image_map  # noqa: E402
from bench.egmeasure import Side, concurrent, eg_floor, gateway_batch, kernelgate_floor, roundtrips, sequential  # noqa: E402
from bench.egstack import eg_stack  # noqa: E402
from bench.history import change, record  # noqa: E402
from bench.procs import ClusterProcess, GatewayProcess  # noqa: E402
from bench.starts import GatewayClient  # noqa: E402
from tests.egharness import EG_VERSION, RegistryUnreachable  # noqa: E402

SIDES = ("kernelgate", "eg")


@dataclass(frozen=True)
class Budget:
    sequential: int
    rounds: tuple[tuple[int, int], ...]
    """(starts at once, batches of them): the makespan reported is the median batch's."""
    roundtrips: int


FULL = Budget(sequential=6, rounds=((8, 3), (32, 2)), roundtrips=200)
QUICK = Budget(sequential=3, rounds=((8, 1), (32, 1)), roundtrips=50)


async def measure(budget: Budget, figures: dict[str, dict], begin: float) -> bool:
    """Everything, on one simulated cluster; returns whether kernels ran in each gateway's namespace (shared)."""
    stack = await asyncio.to_thread(eg_stack)
    with tempfile.TemporaryDirectory(prefix="kernelgate-bench-eg-images-") as folder:
        cluster = ClusterProcess(images=image_map(stack, Path(folder)))
        try:
            eg = await EGProcess.start(stack, cluster.kubeconfig)
            try:
                env = {"EG_SHARED_NAMESPACE": "True"} if eg.shared_namespace else {}
                kernelgate = GatewayProcess(cluster.kubeconfig, env=env)
                try:
                    sides = [Side("kernelgate", GatewayClient(kernelgate.url), kernelgate.pid, kernelgate_floor),
                             Side("eg", GatewayClient(eg.url), eg.pid, eg_floor(stack.python, stack.kernel_python))]
                    await run(sides, budget, figures, begin)
                except Exception:
                    print(f"Enterprise Gateway's log, last lines:\n{eg.log_tail()}")
                    raise
                finally:
                    kernelgate.stop()
            finally:
                eg.stop()
        finally:
            cluster.stop()
    return eg.shared_namespace


async def run(sides: list[Side], budget: Budget, figures: dict[str, dict], begin: float) -> None:
    for side in sides:  # the first start pays each gateway's, floor's and the node's lazy set-up
        await gateway_batch(side, 1)
        await side.floor(1)
    for side in sides:
        await sequential(side, budget.sequential, figures[side.name])
    print(f"[sequential done at {time.monotonic() - begin:.0f}s]", flush=True)
    for n, rounds in budget.rounds:
        for side in sides:
            await concurrent(side, n, rounds, figures[side.name])
        print(f"[{n} concurrent done at {time.monotonic() - begin:.0f}s]", flush=True)
    await roundtrips(sides, budget.roundtrips, figures)
    print(f"[round trips done at {time.monotonic() - begin:.0f}s]", flush=True)


ROWS = [
    # (figure, label, format, compared: kernelgate / EG is printed)
    ("floor_start_s", "floor: bare start -> ready (ms)", "ms", True),
    ("start_s", "start -> ready, one at a time (ms)", "ms", True),
    ("start_ratio", "  / its floor", "x", True),
    ("floor_concurrent8_s", "floor: 8 at once, last ready (s)", "s", True),
    ("concurrent8_s", "8 at once, last ready (s)", "s", True),
    ("concurrent8_ratio", "  / its floor", "x", True),
    ("concurrent8_rounds_compared", "  rounds with every start ready", "n", False),
    ("concurrent8_failures", "8 at once: failed starts", "n", False),
    ("floor_concurrent8_failures", "floor: 8 at once, failed starts", "n", False),
    ("floor_concurrent32_s", "floor: 32 at once, last ready (s)", "s", True),
    ("concurrent32_s", "32 at once, last ready (s)", "s", True),
    ("concurrent32_ratio", "  / its floor", "x", True),
    ("concurrent32_rounds_compared", "  rounds with every start ready", "n", False),
    ("concurrent32_failures", "32 at once: failed starts", "n", False),
    ("floor_concurrent32_failures", "floor: 32 at once, failed starts", "n", False),
    ("floor_rss_mib", "floor: bare ipykernel RSS (MiB)", "mib", True),
    ("rss_mib", "kernel pod RSS, all its processes (MiB)", "mib", True),
    ("processes", "  processes in the pod", "n", False),
    ("memory_ratio", "  / its floor", "x", True),
    ("gateway_cpu_ms_per_start", "gateway CPU per start, one at a time (ms)", "ms_cpu", True),
    ("launcher_cpu_ms_per_start", "  + its launcher processes (ms)", "ms_cpu", False),
    ("concurrent32_gateway_cpu_ms_per_start", "gateway CPU per start, 32 at once (ms)", "ms_cpu", True),
    ("concurrent32_launcher_cpu_ms_per_start", "  + its launcher processes (ms)", "ms_cpu", False),
    ("roundtrip_ms", "execute round trip, websocket, median (ms)", "ms_cpu", True),
    ("roundtrip_p90_ms", "  90th percentile (ms)", "ms_cpu", True),
]


def _shown(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value * 1000:.0f}"
    if unit == "s":
        return f"{value:.2f}"
    if unit == "x":
        return f"{value:.2f}x"
    if unit in ("mib", "ms_cpu"):
        return f"{value:.1f}"
    return f"{value:g}"


def flatten(figures: dict[str, dict]) -> dict:
    """``kernelgate_<figure>``, ``eg_<figure>`` and ``kernelgate_over_eg_<figure>``, rounded, for the history."""
    flat: dict = {}
    for side in SIDES:
        flat.update({f"{side}_{k}": v for k, v in figures[side].items()})
    for key, _, _, compared in ROWS:
        ours, theirs = figures["kernelgate"].get(key), figures["eg"].get(key)
        if compared and ours is not None and theirs:
            flat[f"kernelgate_over_eg_{key}"] = ours / theirs
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in flat.items()}


def report(flat: dict, before: dict | None, shared_namespace: bool) -> None:
    where = ("each gateway's own namespace (EG_SHARED_NAMESPACE=True: the cluster rejects the RoleBinding EG "
             "makes in a kernel's namespace)" if shared_namespace else "a namespace each")
    print(f"\nkernelgate against Enterprise Gateway {EG_VERSION}, each against its own floor; kernels in {where}")
    print(f"{'figure':<44} {'kernelgate':>11} {'EG':>9} {'kernelgate/EG':>14}")
    for key, label, unit, compared in ROWS:
        ours, theirs = flat.get(f"kernelgate_{key}"), flat.get(f"eg_{key}")
        if ours is None and theirs is None:
            continue
        ratio = flat.get(f"kernelgate_over_eg_{key}")
        shown = f"{ratio:.2f}" if compared and ratio is not None else ""
        print(f"{label:<44} {_shown(ours, unit):>11} {_shown(theirs, unit):>9} {shown:>14}"
              f"  {change(ratio, before, f'kernelgate_over_eg_{key}') if compared else ''}")


async def main(args: argparse.Namespace) -> int:
    budget = QUICK if args.quick else FULL
    figures: dict[str, dict] = {side: {} for side in SIDES}
    begin = time.monotonic()
    try:
        shared = await measure(budget, figures, begin)
    except RegistryUnreachable as err:
        print(f"Enterprise Gateway {EG_VERSION} cannot be installed: {err}")
        return 1
    flat = flatten(figures)
    flat["shared_namespace"] = shared
    before = record("eg_starts", flat, quick=args.quick)
    report(flat, before, shared)
    print(f"\n{time.monotonic() - begin:.0f} s; results in bench/results/eg_starts.json")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer starts, batches and round trips")
    logging.basicConfig(level=logging.WARNING)
    sys.exit(asyncio.run(main(parser.parse_args())))
