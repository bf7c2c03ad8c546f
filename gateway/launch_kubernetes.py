"""What each kernelspec's ``scripts/launch_kubernetes.py`` runs: render, and with ``--create`` create, a kernel's objects.

The gateway launches kernels itself (``gateway.provisioner``); this command is
for operators and for Enterprise Gateway's ``argv`` convention.  It builds
the same objects with the same builders (``gateway.objects``) from the
kernelspec folder's ``kernel.json`` and ``scripts/kernel-pod.yaml`` and the
environment (``KERNEL_ID``, ``KERNEL_USERNAME``, ``KERNEL_NAMESPACE``,
``KERNEL_SERVICE_ACCOUNT_NAME``, ``KERNEL_IMAGE`` and the other ``KERNEL_*``),
and prints them as YAML; ``--create`` creates them through the current
kubeconfig (or the in-cluster config) in an existing namespace.

    python launch_kubernetes.py kernel.json --RemoteProcessProxy.response-address 10.0.0.5:8877 \\
        --RemoteProcessProxy.public-key <key> [--create]

Each kernelspec keeps its own few-line copy of the script, so an operator can
copy one kernelspec folder alone; the logic lives here, once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import yaml

from gateway.cluster.kubernetes import KubernetesCluster
from gateway.cluster.resources import for_kind
from gateway.launcher.protocol import ResponseKey
from gateway.objects import KernelObjects, kernel_objects, owned_by, parse_template


def main(kernelspec_dir: Path, argv: list[str] | None = None) -> int:
    """Entry point of ``<kernelspec>/scripts/launch_kubernetes.py``; ``kernelspec_dir`` is that kernelspec's folder."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("connection_file", nargs="?", default="", help="accepted for EG compatibility")
    parser.add_argument("--RemoteProcessProxy.kernel-id", dest="kernel_id", default=os.environ.get("KERNEL_ID"))
    parser.add_argument("--RemoteProcessProxy.response-address", dest="response_address", required=True)
    parser.add_argument("--RemoteProcessProxy.public-key", dest="public_key", default="")
    parser.add_argument("--RemoteProcessProxy.port-range", dest="port_range", default="")
    parser.add_argument("--RemoteProcessProxy.spark-context-initialization-mode", dest="spark_mode", default="none")
    parser.add_argument("--create", action="store_true", help="create the objects instead of only printing them")
    args = parser.parse_args(argv)

    objects = render(kernelspec_dir, args)
    if not args.create:
        yaml.safe_dump_all([objects.pod, *objects.companions], sys.stdout, sort_keys=False)
        return 0
    return asyncio.run(create(objects))


def render(kernelspec_dir: Path, args: argparse.Namespace) -> KernelObjects:
    """The kernel's pod and companions from the kernelspec's template, the arguments and the ``KERNEL_*`` env."""
    env = {key: value for key, value in os.environ.items() if key.startswith("KERNEL_")}
    kernel_json = json.loads((kernelspec_dir / "kernel.json").read_text())
    config = kernel_json.get("metadata", {}).get("process_proxy", {}).get("config", {})
    image = env.get("KERNEL_IMAGE") or config.get("image_name") or "elyra/kernel-py:dev"
    launcher_env = {"RESPONSE_ADDRESS": args.response_address, "EG_KUBERNETES_KERNEL_IMAGE": image}
    if args.public_key:
        legacy = ResponseKey.parse(args.public_key).rsa is not None  # EG's RSA key, or our X25519 one
        launcher_env["PUBLIC_KEY" if legacy else "KERNEL_RESPONSE_KEY"] = args.public_key
    if args.port_range:
        launcher_env["PORT_RANGE"] = args.port_range
    template = kernelspec_dir / "scripts" / "kernel-pod.yaml"
    return kernel_objects(
        parse_template(template.read_text(), source="kernel-pod.yaml"),
        kernel_id=args.kernel_id or str(uuid.uuid4()),
        username=env.get("KERNEL_USERNAME") or os.environ.get("USER") or "jovyan",
        namespace=env.get("KERNEL_NAMESPACE") or "default",
        service_account=env.get("KERNEL_SERVICE_ACCOUNT_NAME") or "default",
        image=image,
        env=env,
        launcher_env=launcher_env,
        language=kernel_json.get("language", "python"),
        response_address=args.response_address,
        connection_filename=args.connection_file,
        spark_context_initialization_mode=args.spark_mode,
    )


async def create(objects: KernelObjects) -> int:
    """Create the pod, then its companions owned by it, through the cluster adapter."""
    in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    cluster = KubernetesCluster.in_cluster() if in_pod else KubernetesCluster.from_kubeconfig()
    try:
        namespace = objects.pod["metadata"]["namespace"]
        created = await cluster.create("pods", objects.pod, namespace=namespace)
        for obj in owned_by(created, objects.companions):
            resource = for_kind(obj["apiVersion"], obj["kind"])
            await cluster.create(resource.plural, obj, namespace=namespace)
    finally:
        await cluster.close()
    print(f"pod/{objects.pod['metadata']['name']} created in namespace {namespace}")
    return 0
