"""Enterprise Gateway's floor: its own ``jupyter_client`` starting the ipykernel its kernel pods run.

Run by ``bench/eg_starts.py`` with the Python of EG's server environment (:mod:`bench.egstack`:
``jupyter_client`` 6, as EG 3.3 pins it), one batch per run::

    <eg server env>/bin/python bench/egfloor.py --kernel-python <kernel-py env>/bin/python --concurrency 8

It starts ``--concurrency`` kernels at once with ``AsyncKernelManager`` (kernelspec: that Python
running ``ipykernel_launcher``), each until a client has its ``kernel_info_reply``, reads each
kernel's CPU time when it was ready and its resident memory ``--settle`` seconds later, stops them,
and prints one JSON line: ``{"seconds": [...], "kernel_cpu_s": [...], "rss_kib": [...],
"makespan": s, "failures": [...]}``.  Only the standard library, ``jupyter_client`` and
:mod:`bench.procs` (the standard library alone) are imported: this runs outside kernelgate's environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procs import cpu_seconds, rss_kib  # noqa: E402

TIMEOUT = 180.0


def write_kernelspec(folder: Path, kernel_python: str) -> None:
    spec = folder / "kernels" / "eg-floor"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [kernel_python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "EG floor", "language": "python",
    }))


async def one(results: dict, managers: list, begin: float) -> None:
    from jupyter_client.manager import AsyncKernelManager

    manager = AsyncKernelManager(kernel_name="eg-floor")
    started = time.perf_counter()
    try:
        await manager.start_kernel()
        managers.append(manager)
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=TIMEOUT)
        finally:
            client.stop_channels()
    except Exception as exc:  # reported, not timed
        results["failures"].append(f"{type(exc).__name__}: {exc}")
        return
    now = time.perf_counter()
    results["seconds"].append(now - started)
    results["makespan"] = max(results["makespan"], now - begin)
    pid = manager.kernel.pid  # type: ignore[attr-defined]  # jupyter_client 6 (EG's) keeps the Popen there
    results["pids"].append(pid)
    results["kernel_cpu_s"].append(cpu_seconds(pid))


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="eg-floor-") as folder:
        write_kernelspec(Path(folder), args.kernel_python)
        os.environ["JUPYTER_PATH"] = folder
        results: dict = {"seconds": [], "kernel_cpu_s": [], "rss_kib": [], "makespan": 0.0, "failures": [], "pids": []}
        managers: list = []
        begin = time.perf_counter()
        await asyncio.gather(*(one(results, managers, begin) for _ in range(args.concurrency)))
        await asyncio.sleep(args.settle)
        results["rss_kib"] = [rss_kib(pid) for pid in results.pop("pids")]
        await asyncio.gather(*(m.shutdown_kernel(now=True) for m in managers), return_exceptions=True)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel-python", required=True, help="the Python whose ipykernel is started")
    parser.add_argument("--concurrency", type=int, default=1, help="kernels started at once")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds after ready before memory is read")
    asyncio.run(main(parser.parse_args()))
