"""The ``kernelgate`` command.

``kernelgate serve`` runs the gateway (on the embedded simulated cluster
unless a kubeconfig or in-cluster config is found; see ``gateway.app``) until
Ctrl-C or SIGTERM, and prints its URL; ``jupyter kernelgate`` is the same
(console script ``jupyter-kernelgate``).  ``kernelgate cluster`` runs the
simulated Kubernetes cluster (API server and one node agent) in the
foreground until Ctrl-C or SIGTERM, and prints the ``KUBECONFIG`` to export
for kubectl.  Each subcommand registers its parser in
:func:`build_parser` and is a function taking the parsed arguments and
returning the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.observability.logs import install as kernel_log_lines

if TYPE_CHECKING:
    from fakes.node.images import ImageMap

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
    cluster.add_argument("--images", default=None, metavar="FILE",
                         help="a YAML or JSON file mapping images to local programs, on top of the base, kernel "
                         "and gateway images the node knows (see the README)")
    cluster.set_defaults(func=run_cluster)

    serve = commands.add_parser(
        "serve",
        help="run the gateway (on the embedded simulated cluster unless a cluster is configured)",
        description="Run the kernel gateway. Cluster: --kubeconfig or KUBECONFIG, else the in-cluster config "
        "inside a pod, else an embedded simulated cluster running kernels as local processes. Settings not "
        "given here come from the EG_* environment variables. Stops cleanly on Ctrl-C or SIGTERM.",
    )
    serve.add_argument("--ip", default=None, help="address to listen on (default: EG_IP or 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port to listen on (default: EG_PORT or 8888; 0: any)")
    serve.add_argument("--kernelspecs", action="append", default=[], metavar="DIR",
                       help="a folder of kernelspecs, searched before the defaults (this repository's "
                       "kernelspecs/ and the Jupyter paths); repeatable")
    serve.add_argument("--kubeconfig", default=None, metavar="PATH", help="kubeconfig of the cluster to run kernels on")
    serve.add_argument("--log-level", dest="serve_log_level", default=None, metavar="LEVEL",
                       help="logging level (default: EG_LOG_LEVEL or INFO)")
    serve.set_defaults(func=run_serve)
    return parser


def run_serve(args: argparse.Namespace) -> int:
    """``kernelgate serve``: run the gateway until interrupted; 0 on a clean stop, 2 on a bad setting."""
    from gateway.config import ConfigError, GatewayConfig

    overrides: dict[str, object] = {}
    if args.ip is not None:
        overrides["ip"] = args.ip
    if args.port is not None:
        overrides["port"] = args.port
    if args.serve_log_level is not None:
        overrides["log_level"] = args.serve_log_level.upper()
    try:
        config = GatewayConfig(**overrides)
        if args.kernelspecs:
            config.kernel_spec_paths = [str(Path(p).resolve()) for p in args.kernelspecs] + list(config.kernel_spec_paths)
    except ConfigError as error:
        print(f"kernelgate: {error}", file=sys.stderr)
        return 2
    explicit = args.serve_log_level or (config.log_level if os.environ.get("EG_LOG_LEVEL") else None)
    logging.getLogger().setLevel((explicit or args.log_level).upper())
    from gateway.aio import run
    from gateway.kernels.channels import allow_many_sockets

    allow_many_sockets()
    return run(_serve_gateway(config, args.kubeconfig))


async def _serve_gateway(config: object, kubeconfig: str | None) -> int:
    """Say which cluster and why (one line on stderr), start the gateway, serve until SIGINT or SIGTERM.

    1 when it cannot start: the cluster cannot be used (its kubeconfig unreadable, its API server
    unreachable or refusing the gateway) or a port cannot be bound; one line says why, no traceback.
    """
    from gateway.app import CannotListen, ClusterUnusable, Gateway

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    gateway = Gateway(config, kubeconfig=kubeconfig)  # type: ignore[arg-type]
    connection = gateway.connection
    print(f"kernelgate: cluster: {connection.description} ({getattr(connection, 'source', '')})",
          file=sys.stderr, flush=True)
    try:
        try:
            await gateway.start()
        except (ClusterUnusable, CannotListen) as error:
            print(f"kernelgate: {error}", file=sys.stderr, flush=True)
            return 1
        except OSError as error:  # an address that is not this host's...
            print(f"kernelgate: cannot serve: {error}", file=sys.stderr, flush=True)
            return 1
        # What start-up made (modules, settings, the informers' first lists) lives as long as the
        # process: kept out of the garbage collector's full passes, which otherwise walk all of it
        # again and again as kernels start (each such pass took some 100 ms).
        gc.freeze()
        print(f"kernelgate serving at {gateway.url} on {gateway.connection.description}", flush=True)
        print(f"Point Jupyter at it with: jupyter lab --gateway-url={gateway.url}", flush=True)
        await stop.wait()
        if getattr(gateway.connection, "ephemeral", False):
            print("Stopping: shutting down kernels", file=sys.stderr, flush=True)
        else:
            print("Stopping: kernels stay in the cluster, served by the other replicas and the next gateway",
                  file=sys.stderr, flush=True)
    finally:
        await gateway.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def run_cluster(args: argparse.Namespace) -> int:
    """``kernelgate cluster``: serve until interrupted; 0 on a clean stop, 2 on an unreadable ``--images`` file."""
    import yaml

    from fakes.node.gateway_image import repository_image_map  # the simulated cluster is only needed here
    from fakes.node.images import ImageMap

    state_dir = Path(args.state_dir).resolve()
    kubeconfig_path = Path(args.kubeconfig).resolve() if args.kubeconfig else state_dir / "kubeconfig"
    images = None
    if args.images:
        try:
            images = ImageMap.load(args.images, base=repository_image_map())
        except (OSError, ValueError, AttributeError, TypeError, yaml.YAMLError) as error:
            print(f"kernelgate: cannot read the image map {args.images}: {error}", file=sys.stderr)
            return 2
    return asyncio.run(_serve_cluster(args, state_dir, kubeconfig_path, images))


async def _serve_cluster(args: argparse.Namespace, state_dir: Path, kubeconfig_path: Path,
                         images: ImageMap | None) -> int:
    from fakes.serve import SimulatedCluster

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with SimulatedCluster(
            host=args.host, port=args.port, state_dir=state_dir, kubeconfig_path=kubeconfig_path,
            node_agent=not args.no_node_agent, images=images,
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
    handler = logging.StreamHandler()
    kernel_log_lines(handler)  # every line about a kernel ends with kernel=<id>
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO), handlers=[handler])
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


def jupyter_main() -> int:
    """Entry point of ``jupyter-kernelgate`` (``jupyter kernelgate``): ``kernelgate serve`` with the same options."""
    argv = sys.argv[1:]
    if not argv or argv[0] not in ("serve", "cluster", "-h", "--help"):
        argv = ["serve", *argv]
    return main(argv)


if __name__ == "__main__":
    sys.exit(main())
