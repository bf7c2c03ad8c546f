"""Render, and with ``--create`` create, a kernel's pod from this kernelspec's ``kernel-pod.yaml``.

The gateway launches kernels itself (``gateway.provisioner``); this script is
for operators and for Enterprise Gateway's ``argv`` convention: it builds the
same objects with the same builders (``gateway.objects``) from the
environment (``KERNEL_ID``, ``KERNEL_USERNAME``, ``KERNEL_NAMESPACE``,
``KERNEL_SERVICE_ACCOUNT_NAME``, ``KERNEL_IMAGE`` and the other ``KERNEL_*``)
and prints them as YAML; ``--create`` creates them through the current
kubeconfig (or the in-cluster config) in an existing namespace.

    python launch_kubernetes.py kernel.json --RemoteProcessProxy.response-address 10.0.0.5:8877 \\
        --RemoteProcessProxy.public-key <key> [--create]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path

import yaml

SCRIPTS = Path(__file__).resolve().parent
try:
    import gateway  # noqa: F401
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(SCRIPTS.parents[2]))
from gateway.launcher.protocol import ResponseKey  # noqa: E402
from gateway.objects import kernel_objects, owned_by, parse_template  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("connection_file", nargs="?", default="", help="accepted for EG compatibility")
    parser.add_argument("--RemoteProcessProxy.kernel-id", dest="kernel_id", default=os.environ.get("KERNEL_ID"))
    parser.add_argument("--RemoteProcessProxy.response-address", dest="response_address", required=True)
    parser.add_argument("--RemoteProcessProxy.public-key", dest="public_key", default="")
    parser.add_argument("--RemoteProcessProxy.port-range", dest="port_range", default="")
    parser.add_argument("--RemoteProcessProxy.spark-context-initialization-mode", dest="spark_mode", default="none")
    parser.add_argument("--create", action="store_true", help="create the objects instead of only printing them")
    args = parser.parse_args(argv)

    env = {key: value for key, value in os.environ.items() if key.startswith("KERNEL_")}
    kernel_json = json.loads((SCRIPTS.parent / "kernel.json").read_text())
    config = kernel_json.get("metadata", {}).get("process_proxy", {}).get("config", {})
    image = env.get("KERNEL_IMAGE") or config.get("image_name") or "elyra/kernel-py:dev"
    launcher_env = {"RESPONSE_ADDRESS": args.response_address, "EG_KUBERNETES_KERNEL_IMAGE": image}
    if args.public_key:
        legacy = ResponseKey.parse(args.public_key).rsa is not None  # EG's RSA key, or our X25519 one
        launcher_env["PUBLIC_KEY" if legacy else "KERNEL_RESPONSE_KEY"] = args.public_key
    if args.port_range:
        launcher_env["PORT_RANGE"] = args.port_range
    objects = kernel_objects(
        parse_template((SCRIPTS / "kernel-pod.yaml").read_text(), source="kernel-pod.yaml"),
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
    if not args.create:
        yaml.safe_dump_all([objects.pod, *objects.companions], sys.stdout, sort_keys=False)
        return 0
    return create(objects.pod, list(objects.companions))


def create(pod: dict, companions: list[dict]) -> int:
    """Create the pod, then its companions owned by it, with the kubernetes client."""
    from kubernetes import client, config, utils

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    api = client.ApiClient()
    namespace = pod["metadata"]["namespace"]
    created = client.CoreV1Api(api).create_namespaced_pod(namespace, pod)
    for obj in owned_by(api.sanitize_for_serialization(created), companions):
        utils.create_from_dict(api, obj, namespace=namespace)
    print(f"pod/{pod['metadata']['name']} created in namespace {namespace}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
