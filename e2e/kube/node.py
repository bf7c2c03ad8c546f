"""The node agent as the real control plane's kubelet, in a process of its own.

:class:`~e2e.kube.launcher.ControlPlane` runs ``python -m e2e.kube.node`` with
the node's kubeconfig (its client certificate names ``system:node:<name>`` in
``system:nodes``): the agent registers the Node, heartbeats through its Lease,
runs the pods the real scheduler binds to it as local processes, writes their
status through ``pods/status`` and gives them service-account token files from
the TokenRequest API.  It prints ``node ready`` once the Node is registered and
the first pod list is processed, and stops (terminating its pods) on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from fakes.node.gateway_image import repository_image_map
from fakes.node.kubelet import NodeAgent
from gateway.cluster.kubernetes import KubernetesCluster

READY_LINE = "node ready"
LEASE_RENEW_SECONDS = 10.0
"""The kubelet's renewal period (a quarter of the Lease's 40 s)."""


async def serve(kubeconfig: Path, node_name: str, server_url: str, ca: Path, work_dir: Path) -> None:
    """Run the node agent until SIGTERM or SIGINT; announce readiness on stdout."""
    cluster = await asyncio.to_thread(KubernetesCluster.from_kubeconfig, str(kubeconfig))
    ca_pem = await asyncio.to_thread(ca.read_bytes)
    agent = NodeAgent(cluster, node_name=node_name, images=repository_image_map(), work_dir=work_dir,
                      api_server_url=server_url, api_ca_pem=ca_pem, schedule=False,
                      lease_renew_seconds=LEASE_RENEW_SECONDS)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await agent.start()
        print(READY_LINE, flush=True)
        # The launcher reads stdout only up to that line: anything printed later goes to the log.
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        await stop.wait()
    finally:
        await agent.stop()
        await cluster.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.kube.node", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True, help="the node's kubeconfig (system:node:<name>)")
    parser.add_argument("--node-name", default="node-1")
    parser.add_argument("--server", required=True, help="the API server's URL, as pods' in-cluster clients reach it")
    parser.add_argument("--ca", type=Path, required=True, help="the cluster CA pods' clients trust")
    parser.add_argument("--work-dir", type=Path, required=True, help="where pods' logs and files go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(args.kubeconfig, args.node_name, args.server, args.ca, args.work_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
