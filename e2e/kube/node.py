"""The node agent as the real control plane's kubelet, in a process of its own.

:class:`~e2e.kube.launcher.ControlPlane` runs ``python -m e2e.kube.node`` with
the node's kubeconfig (its client certificate names ``system:node:<name>`` in
``system:nodes``): the agent registers the Node, heartbeats through its Lease,
runs the pods the real scheduler binds to it as local processes, writes their
status through ``pods/status`` and gives them service-account token files from
the TokenRequest API.  It serves the kubelet API (``fakes.node.kubeletapi``: logs,
exec, attach, port-forward) on a free port of 127.0.0.1, which its Node's status
names, so ``kubectl logs|exec|attach|port-forward`` reach its pods through the
API server.  It prints ``node ready`` once the Node is registered and the first
pod list is processed, and stops (terminating its pods) on SIGTERM.
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
from fakes.node.images import ImageMap
from fakes.node.kubelet import NodeAgent
from fakes.node.kubeletapi import KubeletApi, ServingCertificate
from gateway.cluster.kubernetes import KubernetesCluster

READY_LINE = "node ready"
LEASE_RENEW_SECONDS = 10.0
"""The kubelet's renewal period (a quarter of the Lease's 40 s)."""


async def serve(kubeconfig: Path, node_name: str, server_url: str, ca: Path, work_dir: Path,
                serving: ServingCertificate, images: Path | None = None) -> None:
    """Run the node agent and its kubelet API until SIGTERM or SIGINT; announce readiness on stdout."""
    cluster = await asyncio.to_thread(KubernetesCluster.from_kubeconfig, str(kubeconfig))
    ca_pem = await asyncio.to_thread(ca.read_bytes)
    image_map = repository_image_map()
    if images is not None:
        image_map = await asyncio.to_thread(ImageMap.load, images, base=image_map)
    agent = NodeAgent(cluster, node_name=node_name, images=image_map, work_dir=work_dir,
                      api_server_url=server_url, api_ca_pem=ca_pem, schedule=False,
                      lease_renew_seconds=LEASE_RENEW_SECONDS)
    api = KubeletApi(cluster, node_name, agent.streaming, agent.worker, serving)
    agent.kubelet_port = await api.start()  # before start(): the Node it registers names the port
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
        await api.stop()
        await agent.stop()
        await cluster.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.kube.node", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True, help="the node's kubeconfig (system:node:<name>)")
    parser.add_argument("--node-name", default="node-1")
    parser.add_argument("--server", required=True, help="the API server's URL, as pods' in-cluster clients reach it")
    parser.add_argument("--ca", type=Path, required=True, help="the cluster CA pods' clients trust")
    parser.add_argument("--work-dir", type=Path, required=True, help="where pods' logs and files go")
    parser.add_argument("--serving-cert", type=Path, required=True, help="the kubelet API's certificate (cluster CA)")
    parser.add_argument("--serving-key", type=Path, required=True)
    parser.add_argument("--images", type=Path, help="an image map file: more images the node runs (fakes.node.images)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serving = ServingCertificate(args.serving_cert, args.serving_key, client_ca=args.ca)
    asyncio.run(serve(args.kubeconfig, args.node_name, args.server, args.ca, args.work_dir, serving, args.images))
    return 0


if __name__ == "__main__":
    sys.exit(main())
