"""The ``kernelgate`` command.

``kernelgate cluster`` runs the simulated Kubernetes cluster (API server and
one node agent) in the foreground until Ctrl-C or SIGTERM, and prints the
``KUBECONFIG`` to export for kubectl.  Each subcommand registers its parser in
:func:`build_parser` and is a function taking the parsed arguments and
returning the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_STATE_DIR = ".kernelgate"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-parser per subcommand."""
    parser = argparse.ArgumentParser(prog="kernelgate", description="A Jupyter kernel gateway for Kubernetes.")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    cluster = commands.add_parser(
        "cluster",
        help="run the simulated Kubernetes cluster (API server + node agent) in the foreground",
        description="Run the simulated Kubernetes cluster: its API server over HTTPS and one node agent "
        "that runs pods as local processes. Stops cleanly on Ctrl-C or SIGTERM.",
    )
    cluster.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    cluster.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    cluster.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help="directory for the kubeconfig and CA (default: %(default)s)")
    cluster.add_argument("--kubeconfig", default=None, help="where to write the kubeconfig (default: STATE_DIR/kubeconfig)")
    cluster.add_argument("--no-node-agent", action="store_true", help="serve the API only; pods are not run")
    cluster.set_defaults(func=run_cluster)
    return parser


def run_cluster(args: argparse.Namespace) -> int:
    """``kernelgate cluster``: serve until interrupted; 0 on a clean stop."""
    state_dir = Path(args.state_dir).resolve()
    kubeconfig_path = Path(args.kubeconfig).resolve() if args.kubeconfig else state_dir / "kubeconfig"
    return asyncio.run(_serve_cluster(args, state_dir, kubeconfig_path))


async def _serve_cluster(args: argparse.Namespace, state_dir: Path, kubeconfig_path: Path) -> int:
    from fakes.serve import SimulatedCluster  # the simulated cluster is only needed by this subcommand

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with SimulatedCluster(
            host=args.host, port=args.port, state_dir=state_dir, kubeconfig_path=kubeconfig_path,
            node_agent=not args.no_node_agent,
        ) as cluster:
            print(f"Simulated Kubernetes cluster serving at {cluster.url}", flush=True)
            print("Use it from another shell with:", flush=True)
            print(f"export KUBECONFIG={cluster.kubeconfig_path}", flush=True)
            await stop.wait()
            print("Stopping: terminating pods and closing the API server", file=sys.stderr, flush=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kernelgate`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
