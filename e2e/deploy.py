"""Deploying the gateway with kubectl as operators do, on any cluster a kubeconfig names.

``e2e/`` deploys on kind with these functions; the scenarios' ``apiserver``
target and ``e2e/test_deploy.py`` apply the same objects to the simulated
API server, so what is tested here is what kind runs::

    kubectl = Kubectl(kubeconfig)
    apply(kubectl, gateway_objects([DEFAULT, SHARED, CULLING], auth_token="..."))
    wait_available(kubectl, [DEFAULT, SHARED, CULLING], timeout=300)
    with port_forward(kubectl, DEFAULT) as url: ...
    print(diagnostics(kubectl))        # logs and events of every app=enterprise-gateway pod

``gateway_objects`` reads ``manifests/enterprise-gateway.yaml`` and adds, for
each variant other than the default, a Deployment and Service of its own
(one replica, the variant's ``EG_*`` settings), and a Secret holding the
``EG_AUTH_TOKEN`` every gateway requires.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import queue
import re
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from scenarios.variants import GATEWAY_NAMESPACE, Variant

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "manifests" / "enterprise-gateway.yaml"
GATEWAY = "enterprise-gateway"
"""Name of the manifests' Deployment and Service (and of the gateway's container)."""
AUTH_SECRET = "enterprise-gateway-auth"
HTTP_PORT = 8888
KUBECTL_TIMEOUT = 120.0
LOG_LINES = 500


class KubectlError(Exception):
    """kubectl exited with an error; the message holds its command line and stderr."""


class Kubectl:
    """The kubectl binary bound to one kubeconfig; each call bounded by ``timeout`` seconds."""

    def __init__(self, kubeconfig: str | Path, binary: str | Path = "kubectl", *, timeout: float = KUBECTL_TIMEOUT,
                 cache_dir: str | Path | None = None) -> None:
        self.binary = str(binary)
        self.timeout = timeout
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        if cache_dir is not None:
            self.env["KUBECACHEDIR"] = str(cache_dir)

    def __call__(self, *args: str, input: str | None = None, timeout: float | None = None) -> str:
        """kubectl's stdout; :class:`KubectlError` when it fails or outlives its timeout."""
        command = [self.binary, *args]
        try:
            done = subprocess.run(command, input=input, env=self.env, capture_output=True, text=True,
                                  timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired as error:
            raise KubectlError(f"{' '.join(args)}: no answer within {error.timeout}s") from error
        if done.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} exited with {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([self.binary, *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)


# --------------------------------------------------------------------------- the objects


def deployment_name(variant: Variant) -> str:
    """The Deployment (and Service) of ``variant``: the manifests' own for the default."""
    return GATEWAY if variant.name == "default" else f"{GATEWAY}-{variant.name}"


def gateway_objects(variants: Iterable[Variant], *, auth_token: str, manifest: Path = MANIFEST,
                    image: str | None = None) -> list[dict[str, Any]]:
    """The manifest's objects plus one Deployment and Service per non-default variant (see the module docstring).

    ``image`` replaces the gateway image (kind loads it under the manifest's name by default).
    """
    with manifest.open(encoding="utf-8") as stream:
        base = [doc for doc in yaml.safe_load_all(stream) if doc]
    deployment = _one(base, "Deployment", GATEWAY)
    service = _one(base, "Service", GATEWAY)
    objects = [doc for doc in base if doc not in (deployment, service)]
    objects.append({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": AUTH_SECRET, "namespace": GATEWAY_NAMESPACE,
                     "labels": {"app": "enterprise-gateway", "component": "enterprise-gateway"}},
        # data rather than stringData: kubectl apply would report a stringData Secret "configured" every time.
        "data": {"token": base64.b64encode(auth_token.encode()).decode()},
    })
    for variant in variants:
        objects += _variant_objects(deployment, service, variant, image)
    return objects


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o.get("kind") == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"the manifest should hold one {kind} {name}, not {len(found)}"
    return found[0]


def _variant_objects(deployment: dict[str, Any], service: dict[str, Any], variant: Variant,
                     image: str | None) -> list[dict[str, Any]]:
    name = deployment_name(variant)
    deployment, service = copy.deepcopy(deployment), copy.deepcopy(service)
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == GATEWAY)
    container["env"] = _with_env(container.get("env") or [], variant.env)
    container["env"].append({"name": "EG_AUTH_TOKEN",
                             "valueFrom": {"secretKeyRef": {"name": AUTH_SECRET, "key": "token"}}})
    if image:
        container["image"] = image
    if name != GATEWAY:
        # Its own pods and Service: the selector label names the variant.
        deployment["metadata"]["name"] = service["metadata"]["name"] = name
        deployment["spec"]["replicas"] = 1
        for labels in (deployment["metadata"]["labels"], deployment["spec"]["selector"]["matchLabels"],
                       deployment["spec"]["template"]["metadata"]["labels"], service["spec"]["selector"]):
            labels["gateway-selector"] = name
    return [service, deployment]


def _with_env(env: list[dict[str, Any]], changes: Mapping[str, str]) -> list[dict[str, Any]]:
    """``env`` with the variables of ``changes`` set (in place where present, else appended)."""
    out = [dict(var, value=changes[var["name"]]) if var["name"] in changes else dict(var) for var in env]
    present = {var["name"] for var in env}
    out += [{"name": name, "value": value} for name, value in changes.items() if name not in present]
    return out


# --------------------------------------------------------------------------- applying and waiting


def apply(kubectl: Kubectl, objects: list[dict[str, Any]]) -> str:
    """``kubectl apply`` of ``objects`` (namespaces first, as in the manifest); kubectl's report."""
    return kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects, sort_keys=False))


def wait_available(kubectl: Kubectl, variants: Iterable[Variant], *, timeout: float) -> None:
    """``kubectl rollout status`` of each variant's Deployment, each within ``timeout`` seconds."""
    for variant in variants:
        kubectl("rollout", "status", f"deployment/{deployment_name(variant)}", "-n", GATEWAY_NAMESPACE,
                f"--timeout={int(timeout)}s", timeout=timeout + 30)


FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")


@contextlib.contextmanager
def port_forward(kubectl: Kubectl, variant: Variant, *, timeout: float = 60.0) -> Iterator[str]:
    """``kubectl port-forward`` to the variant's Service on a free local port; yields the gateway's URL."""
    proc = kubectl.popen("port-forward", "-n", GATEWAY_NAMESPACE, f"service/{deployment_name(variant)}",
                         f":{HTTP_PORT}", "--address", "127.0.0.1")
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, name=f"port-forward-{variant.name}", daemon=True).start()
    try:
        output: list[str] = []
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                raise KubectlError(f"port-forward to {deployment_name(variant)}: no port within {timeout}s") from None
            if line is None:
                raise KubectlError(f"port-forward to {deployment_name(variant)} ended: {''.join(output)}")
            output.append(line)
            match = FORWARDING.search(line)
            if match:
                break
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- when something went wrong


def diagnostics(kubectl: Kubectl) -> str:
    """The status, events and logs of every ``app=enterprise-gateway`` pod (gateways and kernels), as text.

    Never raises: what kubectl cannot tell is reported in the text.
    """
    sections = []
    try:
        pods = json.loads(kubectl("get", "pods", "--all-namespaces", "-l", "app=enterprise-gateway", "-o", "json"))
    except (KubectlError, ValueError) as error:
        return f"listing the app=enterprise-gateway pods failed: {error}"
    sections.append(_try(kubectl, "get", "pods", "--all-namespaces", "-l", "app=enterprise-gateway", "-o", "wide"))
    for pod in pods.get("items", []):
        name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
        statuses = [(s.get("name"), s.get("state"), s.get("restartCount"))
                    for s in (pod.get("status") or {}).get("containerStatuses") or []]
        sections.append(f"===== pod {namespace}/{name}: phase {pod.get('status', {}).get('phase')}, "
                        f"containers {statuses}")
        sections.append("--- events\n" + _try(kubectl, "get", "events", "-n", namespace, "--field-selector",
                                               f"involvedObject.kind=Pod,involvedObject.name={name}"))
        sections.append("--- logs\n" + _try(kubectl, "logs", "-n", namespace, name, "--all-containers",
                                             f"--tail={LOG_LINES}"))
    return "\n".join(sections)


def _try(kubectl: Kubectl, *args: str) -> str:
    try:
        return kubectl(*args, timeout=30)
    except KubectlError as error:
        return f"({error})"
