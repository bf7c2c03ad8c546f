"""Enterprise Gateway 3.3's names for a kernel: its pod's variables, its templates' values, its volumes.

Images built ``FROM elyra/kernel-py`` (and ``kernel-spark-py``, ``kernel-r``,
``kernel-scala``) start with EG's ``bootstrap-kernel.sh``, which reads
``KERNEL_ID``, ``KERNEL_LANGUAGE``, ``RESPONSE_ADDRESS``, ``PUBLIC_KEY``,
``PORT_RANGE`` (else ``EG_PORT_RANGE``, else ``0..0``),
``KERNEL_SPARK_CONTEXT_INIT_MODE`` (else ``none``), ``KERNEL_CLASS_NAME`` and,
for Scala, ``KERNEL_USERNAME``; EG's launchers read
``EG_MIN_PORT_RANGE_SIZE`` (1000) and ``EG_MAX_PORT_RANGE_RETRIES`` (5).
EG's ``launch_kubernetes.py`` also sets ``KERNEL_NAME`` (the kernelspec's
folder) and EG's process proxy ``KERNEL_POD_NAME``, ``KERNEL_IMAGE``,
``KERNEL_EXECUTOR_IMAGE``.  :func:`eg_pod_env` is what the provisioner adds
to every kernel pod's env for them, beside the gateway's own variables; the
public key is public, and no secret is among them.

A kernelspec's ``kernel-pod.yaml.j2`` sees EG's keywords: every ``KERNEL_*``
variable of the pod, lowercased (``kernel_cpus``, ``kernel_working_dir``,
``kernel_spark_context_init_mode``...), ``KERNEL_VOLUMES`` and
``KERNEL_VOLUME_MOUNTS`` parsed into lists of mappings.
:func:`eg_template_values` builds them after the gateway's own checks: the
kernel's id, user, namespace, service account, pod name and image are the
gateway's (a client's ``KERNEL_POD_NAME`` never names a pod, whether plain or
a ``{{ ... }}`` template as EG #1368 allows); ``KERNEL_UID``/``KERNEL_GID``
are whole numbers (default 1000/100); an empty ``KERNEL_CPUS`` and the like
counts as unset; volumes pass :func:`parse_volume_list`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from gateway.objects.errors import InvalidKernelRequest, TemplateError
from gateway.objects.names import is_dns1123_label
from gateway.objects.quantities import RESOURCE_ENV
from gateway.objects.template import check_json_compatible

EG_MIN_PORT_RANGE_SIZE = 1000
"""EG's ``EG_MIN_PORT_RANGE_SIZE`` default: its launchers refuse a smaller ``PORT_RANGE``."""
EG_MAX_PORT_RANGE_RETRIES = 5
"""EG's ``EG_MAX_PORT_RANGE_RETRIES`` default."""
NO_PORT_RANGE = "0..0"
VOLUME_VARIABLES = ("KERNEL_VOLUMES", "KERNEL_VOLUME_MOUNTS")
"""The variables EG parses as YAML lists of mappings for its template; every other value stays a string."""
VOLUME_SOURCES = ("persistentVolumeClaim", "configMap", "emptyDir", "nfs")
"""What a ``KERNEL_VOLUMES`` entry may mount: never the node's files (``hostPath``) or the namespace's Secrets."""
MOUNT_FIELDS: Mapping[str, type] = {"name": str, "mountPath": str, "subPath": str, "readOnly": bool}
"""What a ``KERNEL_VOLUME_MOUNTS`` entry may say, and the type of each."""
MAX_VOLUME_DEPTH = 8
"""How deeply a volume list may nest (the list, a volume, its source, and what the source holds)."""
DEFAULT_UID = "1000"
DEFAULT_GID = "100"
_MAX_ID = 2147483647
_EMPTY_IS_UNSET = frozenset(name for _, request, limit in RESOURCE_ENV for name in (request, limit))


def eg_pod_env(
    *,
    kernel_name: str,
    pod_name: str,
    image: str,
    spark_context_mode: str,
    port_range: str | None,
    kernel_class_name: str = "",
) -> dict[str, str]:
    """The variables EG's bootstrap and launchers read that the gateway's own set lacks, with EG's defaults.

    Called by the provisioner for every launch; the result is laid over the
    kernel's env with the launcher's variables.  ``port_range`` is
    ``EG_PORT_RANGE`` (``None``: any port, ``0..0``).
    """
    env = {
        "KERNEL_NAME": kernel_name,
        "KERNEL_POD_NAME": pod_name,
        "KERNEL_IMAGE": image,
        "KERNEL_SPARK_CONTEXT_INIT_MODE": spark_context_mode or "none",
        "PORT_RANGE": port_range or NO_PORT_RANGE,
        "EG_MIN_PORT_RANGE_SIZE": str(_min_port_range_size(port_range)),
        "EG_MAX_PORT_RANGE_RETRIES": str(EG_MAX_PORT_RANGE_RETRIES),
    }
    if kernel_class_name:
        env["KERNEL_CLASS_NAME"] = kernel_class_name
    return env


def eg_template_values(
    pod_env: Mapping[str, str],
    *,
    kernel_id: str,
    username: str,
    namespace: str,
    service_account: str,
    pod_name: str,
    image: str,
) -> dict[str, Any]:
    """The values a ``kernel-pod.yaml.j2`` renders with (see the module docstring).

    ``pod_env`` is the kernel's env as its pod will get it: the request's env
    with the launcher's and :func:`eg_pod_env`'s variables laid over.  Raises
    :class:`InvalidKernelRequest` for a ``KERNEL_UID``/``KERNEL_GID`` that is
    not a whole number, or volumes :func:`parse_volume_list` refuses.
    """
    values: dict[str, Any] = {}
    for name, value in pod_env.items():
        if not name.startswith("KERNEL_") or (name in _EMPTY_IS_UNSET and value == ""):
            continue
        values[name.lower()] = parse_volume_list(name, value) if name in VOLUME_VARIABLES else value
    values.update(
        kernel_id=kernel_id,
        kernel_username=username,
        kernel_namespace=namespace,
        kernel_service_account_name=service_account,
        kernel_pod_name=pod_name,
        kernel_image=image,
        kernel_executor_image=pod_env.get("KERNEL_EXECUTOR_IMAGE") or image,
        kernel_uid=_id_text(pod_env, "KERNEL_UID", DEFAULT_UID),
        kernel_gid=_id_text(pod_env, "KERNEL_GID", DEFAULT_GID),
    )
    return values


def parse_volume_list(name: str, text: str) -> list[dict[str, Any]]:
    """``KERNEL_VOLUMES`` or ``KERNEL_VOLUME_MOUNTS`` as EG parses it (a YAML list of mappings), checked.

    Called by the kernel service for a client's value before anything is
    launched, and again for the template's values.  Volumes need a DNS-1123
    ``name`` and exactly one of :data:`VOLUME_SOURCES`; mounts only the fields
    of :data:`MOUNT_FIELDS`, with ``name`` and ``mountPath``.  Raises
    :class:`InvalidKernelRequest` naming the variable, never echoing its value.
    """
    if text.strip() == "":
        return []
    try:
        parsed = yaml.safe_load(text)
        check_json_compatible(parsed, name)
    except (yaml.YAMLError, TemplateError, RecursionError):
        parsed = None
    if not isinstance(parsed, list) or not all(isinstance(item, dict) for item in parsed) \
            or _depth(parsed) > MAX_VOLUME_DEPTH:
        raise InvalidKernelRequest(f"{name} must be a YAML list of mappings, such as [{{name: data, ...}}].")
    check = _check_volume if name == "KERNEL_VOLUMES" else _check_mount
    for index, item in enumerate(parsed):
        check(name, index, item)
    return parsed


def _check_volume(variable: str, index: int, volume: dict[str, Any]) -> None:
    where = f"{variable} entry {index + 1}"
    if not isinstance(volume.get("name"), str) or not is_dns1123_label(volume["name"]):
        raise InvalidKernelRequest(f"{where} needs a name of lowercase letters, digits and '-'.")
    sources = [key for key in volume if key != "name"]
    if len(sources) != 1 or sources[0] not in VOLUME_SOURCES or not isinstance(volume[sources[0]], dict):
        allowed = ", ".join(VOLUME_SOURCES)
        raise InvalidKernelRequest(f"{where} must hold its name and one mapping, one of {allowed}.")


def _check_mount(variable: str, index: int, mount: dict[str, Any]) -> None:
    where = f"{variable} entry {index + 1}"
    for key, value in mount.items():
        expected = MOUNT_FIELDS.get(key)
        if expected is None:
            raise InvalidKernelRequest(f"{where} may only say {', '.join(MOUNT_FIELDS)}.")
        if not isinstance(value, expected):
            raise InvalidKernelRequest(f"{where}: {key} must be a {'boolean' if expected is bool else 'string'}.")
    if "name" not in mount or "mountPath" not in mount:
        raise InvalidKernelRequest(f"{where} needs a name and a mountPath.")


def _depth(node: Any) -> int:
    if isinstance(node, dict):
        return 1 + max(map(_depth, node.values()), default=0)
    if isinstance(node, list):
        return 1 + max(map(_depth, node), default=0)
    return 0


def _id_text(env: Mapping[str, str], name: str, default: str) -> str:
    """``KERNEL_UID``/``KERNEL_GID`` as EG hands its template: the number's text (policy is ``gateway.objects.pod``'s)."""
    text = env.get(name) or default
    if not re.fullmatch(r"[0-9]{1,10}", text) or int(text) > _MAX_ID:
        raise InvalidKernelRequest(f"{name} must be a whole number between 0 and {_MAX_ID}.")
    return str(int(text))


def _min_port_range_size(port_range: str | None) -> int:
    """EG's minimum, lowered to the size of a smaller range the gateway was given, so EG's launchers accept it."""
    low, _, high = (port_range or NO_PORT_RANGE).partition("..")
    if not (low.isdigit() and high.isdigit()) or int(high) <= int(low):
        return EG_MIN_PORT_RANGE_SIZE
    return min(EG_MIN_PORT_RANGE_SIZE, int(high) - int(low))
