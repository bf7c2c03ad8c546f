"""``kernelgate`` as the benchmark runs it: the same command, counting the gateway's Kubernetes API requests.

Every request the gateway sends goes through :meth:`gateway.cluster.kubernetes.transport.Transport.send`
(watches included); this counts them, times each informer's first
list (``Informer.start`` returns once its cache is filled), and on SIGUSR1 prints
``{"api_requests": n, "lease_requests": m, "informer_sync_s": {resource: seconds}}`` as one line on stdout
(``m`` of the ``n``: the replica's lease renewals, which go on with no kernel at all).  Used by
:class:`bench.procs.GatewayProcess`.  With ``KERNELGATE_BENCH_PROFILE=<file>`` in its environment
it also profiles the gateway's CPU time (``cProfile``; SIGUSR2 forgets what was profiled so far, to
profile only a measured window) and writes the statistics there on SIGUSR1 and when it exits;
with ``KERNELGATE_BENCH_ZMQ_MAX_SOCKETS=<n>`` it raises the gateway's ZeroMQ context's socket limit
(1023 by default) to ``n``, to see what limits a gateway following more kernels than that.

    python bench/gatewayproc.py [kernelgate arguments]
"""

from __future__ import annotations

import atexit
import cProfile
import itertools
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import zmq  # noqa: E402
import zmq.asyncio  # noqa: E402

from gateway.cli import main  # noqa: E402
from gateway.cluster.informer import Informer  # noqa: E402
from gateway.cluster.kubernetes.transport import Transport  # noqa: E402

_counter = itertools.count()
_sent = [0]
_leases = [0]
LEASES = "/apis/coordination.k8s.io/v1/namespaces/"
"""Where the replica renews its lease (every few seconds, kernels or none): counted apart as well."""
_send = Transport.send
_informer_start = Informer.start
_synced: dict[str, float] = {}


async def _counted_send(self: Transport, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
    _sent[0] = next(_counter) + 1
    if LEASES in path:
        _leases[0] += 1
    return await _send(self, method, path, *args, **kwargs)


async def _timed_informer_start(self: Informer) -> None:
    begin = time.perf_counter()
    await _informer_start(self)
    _synced[self.resource] = _synced.get(self.resource, 0.0) + time.perf_counter() - begin


def _restart(profiler: cProfile.Profile) -> None:
    """Forget what was profiled so far (SIGUSR2): the statistics then cover only what follows."""
    profiler.disable()
    profiler.clear()
    profiler.enable()


def _report(_signum: int, _frame: object) -> None:
    print(json.dumps({"api_requests": _sent[0], "lease_requests": _leases[0], "informer_sync_s": _synced}), flush=True)
    if _profiler is not None:
        _profiler.dump_stats(os.environ["KERNELGATE_BENCH_PROFILE"])  # which stops it: go on profiling
        _profiler.enable()


_profiler: cProfile.Profile | None = None


if __name__ == "__main__":
    Transport.send = _counted_send  # type: ignore[method-assign]
    Informer.start = _timed_informer_start  # type: ignore[method-assign]
    if os.environ.get("KERNELGATE_BENCH_ZMQ_MAX_SOCKETS"):
        zmq.asyncio.Context.instance().set(zmq.MAX_SOCKETS, int(os.environ["KERNELGATE_BENCH_ZMQ_MAX_SOCKETS"]))
    if os.environ.get("KERNELGATE_BENCH_PROFILE"):
        profiler = _profiler = cProfile.Profile(time.process_time)
        atexit.register(profiler.dump_stats, os.environ["KERNELGATE_BENCH_PROFILE"])
        atexit.register(profiler.disable)  # exit handlers run last-registered first
        signal.signal(signal.SIGUSR2, lambda _signum, _frame: _restart(profiler))
        profiler.enable()
    signal.signal(signal.SIGUSR1, _report)
    sys.exit(main(sys.argv[1:]))
