"""A container's environment and argv, built from the pod spec as a kubelet builds them.

Called by the pod worker (``fakes.node.podworker``) just before it starts a
container process.  The order and rules follow the kubelet's
``makeEnvironmentVariables`` (pkg/kubelet/kubelet_pods.go): the ``kubernetes``
service variables, then ``envFrom`` sources, then ``env`` entries in order,
each value ``$(VAR)``-expanded against what came before; the container runtime
then lays these over the image's own environment.  Nothing of the node agent's
own environment reaches the process.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from gateway.cluster.interface import Cluster, ClusterError, NotFound, Obj

# A valid env var name for envFrom keys (validation.IsEnvVarName: C identifiers plus '.' and '-').
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class ContainerConfigError(Exception):
    """The container cannot be configured (a missing ConfigMap, Secret or key).

    The kubelet reports it as waiting reason ``CreateContainerConfigError``
    with this message (pkg/kubelet/kuberuntime/kuberuntime_container.go).
    """


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Expand ``$(NAME)`` references in ``text`` the way Kubernetes does for env values, command and args.

    ``$$`` is an escaped ``$``; a reference to an unknown name, or an unclosed
    one, stays as written (k8s.io/kubernetes third_party/forked/golang/expansion).
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 == n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append("$(")
                i += 2
                continue
            name = text[i + 2 : close]
            value = lookup(name)
            out.append(value if value is not None else f"$({name})")
            i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def kubernetes_service_env(api_server_url: str) -> dict[str, str]:
    """The variables a pod sees for the ``default/kubernetes`` service (Docker-links style)."""
    url = urlsplit(api_server_url)
    host = url.hostname or "127.0.0.1"
    port = str(url.port or (443 if url.scheme == "https" else 80))
    addr = f"tcp://{host}:{port}"
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": addr,
        f"KUBERNETES_PORT_{port}_TCP": addr,
        f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
        f"KUBERNETES_PORT_{port}_TCP_PORT": port,
        f"KUBERNETES_PORT_{port}_TCP_ADDR": host,
    }


def pod_hostname(pod: Obj) -> str:
    """The hostname a container of ``pod`` gets: ``spec.hostname``, else the pod name cut to 63 characters."""
    return (pod.get("spec", {}).get("hostname") or pod["metadata"]["name"])[:63].rstrip("-.")


class _Sources:
    """Reads ConfigMaps and Secrets through the cluster, once each per container start."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self._cluster = cluster
        self._namespace = namespace
        self._cache: dict[tuple[str, str], Obj | None] = {}

    async def data(self, kind: str, name: str, optional: bool) -> dict[str, str] | None:
        """The decoded data of ConfigMap/Secret ``name``; ``None`` when it is missing but optional."""
        resource = "configmaps" if kind == "ConfigMap" else "secrets"
        key = (resource, name)
        if key not in self._cache:
            try:
                self._cache[key] = await self._cluster.get(resource, name, namespace=self._namespace)
            except NotFound:
                self._cache[key] = None
            except ClusterError as err:
                raise ContainerConfigError(f"failed to read {kind.lower()} {self._namespace}/{name}: {err}") from err
        obj = self._cache[key]
        if obj is None:
            if optional:
                return None
            raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
        if resource == "secrets":
            return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
        values = dict(obj.get("data") or {})
        for k, v in (obj.get("binaryData") or {}).items():
            values.setdefault(k, base64.b64decode(v).decode(errors="replace"))
        return values


def _field_value(pod: Obj, path: str, pod_ip: str | None, host_ip: str) -> str:
    """The downward-API value of ``fieldRef.fieldPath`` (pkg/kubelet/kubelet_pods.go podFieldSelectorRuntimeValue)."""
    meta, spec = pod["metadata"], pod.get("spec", {})
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
        "status.podIP": pod_ip or "",
        "status.podIPs": pod_ip or "",
    }
    if path not in simple:
        raise ContainerConfigError(f"unsupported fieldPath: {path}")
    return str(simple[path])


_SUFFIXES: dict[str, int | Decimal] = {
    "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}


def _quantity(text: str) -> Decimal:
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(text).strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise ContainerConfigError(f"invalid quantity {text!r}")
    return Decimal(match.group(1)) * Decimal(str(_SUFFIXES[match.group(2)]))


def _resource_value(container: Obj, ref: Mapping[str, Any], node_allocatable: Mapping[str, str]) -> str:
    """``resourceFieldRef``: a limit or request, rounded up in units of ``divisor``; an unset
    limit reads as the node's allocatable amount (pkg/api/v1/resource/helpers.go)."""
    section, _, name = str(ref.get("resource", "")).partition(".")
    resources = container.get("resources") or {}
    value = (resources.get(section) or {}).get(name)
    if value is None:
        value = node_allocatable.get(name, "0") if section == "limits" else "0"
    divisor = _quantity(str(ref.get("divisor") or "1"))
    if divisor == 0:
        divisor = Decimal(1)
    return str(math.ceil(_quantity(value) / divisor))


async def container_env(
    cluster: Cluster,
    pod: Obj,
    container: Obj,
    *,
    pod_ip: str | None,
    host_ip: str,
    api_server_url: str | None,
    node_allocatable: Mapping[str, str],
) -> dict[str, str]:
    """The variables the kubelet hands the runtime for ``container`` (not yet merged with the image's).

    Raises :class:`ContainerConfigError` for a missing required source.
    """
    namespace = pod["metadata"]["namespace"]
    sources = _Sources(cluster, namespace)
    service_env = kubernetes_service_env(api_server_url) if api_server_url else {}
    env: dict[str, str] = {}

    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(field)
            if not ref:
                continue
            data = await sources.data(kind, ref.get("name", ""), bool(ref.get("optional")))
            for key, value in (data or {}).items():
                if _ENV_NAME.match(prefix + key):  # invalid names are skipped, as the kubelet does
                    env[prefix + key] = value

    def lookup(name: str) -> str | None:
        return env.get(name, service_env.get(name))

    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), lookup)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[name] = _field_value(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "resourceFieldRef" in source:
            env[name] = _resource_value(container, source["resourceFieldRef"], node_allocatable)
        else:
            for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                ref = source.get(field)
                if not ref:
                    continue
                optional = bool(ref.get("optional"))
                data = await sources.data(kind, ref.get("name", ""), optional)
                if data is None:
                    break
                if ref["key"] not in data:
                    if optional:
                        break
                    raise ContainerConfigError(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref.get('name')}")
                env[name] = data[ref["key"]]
    for name, value in service_env.items():
        env.setdefault(name, value)
    return env


def process_env(image_env: Mapping[str, str], hostname: str, kubelet_env: Mapping[str, str]) -> dict[str, str]:
    """The process environment: the image's, ``HOSTNAME``, then the kubelet's variables over both."""
    merged = dict(image_env)
    merged["HOSTNAME"] = hostname
    merged.update(kubelet_env)
    return merged


def expand_argv(argv: list[str], env: Mapping[str, str]) -> list[str]:
    """``$(VAR)`` expansion of command and args against the container's variables
    (kubelet's ExpandContainerCommandAndArgs: the image's env is not consulted)."""
    return [expand(arg, env.get) for arg in argv]
