"""What the provisioner needs to know of a kernelspec.

The kernel service reads kernelspecs (``gateway.kernels.specs``) and hands the
provisioner a :class:`KernelSpecInfo` per launch; :func:`kernel_spec_info`
builds one from a kernelspec folder's ``kernel.json`` as Enterprise Gateway
reads its Kubernetes kernelspecs: the image from
``metadata.process_proxy.config.image_name``, the Spark mode from the
``--RemoteProcessProxy.spark-context-initialization-mode`` argument of ``argv``
(or EG 3's ``--spark-context-initialization-mode``), the kernel class from its
``--kernel-class-name``.

The kernel's pod comes from the folder's ``scripts/kernel-pod.yaml`` (this
gateway's format, ``gateway.objects.template``) or, when there is none, from
Enterprise Gateway 3.x's ``scripts/kernel-pod.yaml.j2`` (``gateway.objects.jinja``):
:func:`read_pod_template` reads whichever the folder holds at each launch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_KERNEL_IMAGE = "elyra/kernel-py:dev"
"""Enterprise Gateway's image when a kernelspec names none."""
KUBERNETES_PROXY_SUFFIX = "KubernetesProcessProxy"
SPARK_MODE_ARGUMENT = "--RemoteProcessProxy.spark-context-initialization-mode"
SPARK_MODE_ARGUMENTS = (SPARK_MODE_ARGUMENT, "--spark-context-initialization-mode")
KERNEL_CLASS_ARGUMENT = "--kernel-class-name"
TEMPLATE_PATH = Path("scripts") / "kernel-pod.yaml"
"""Where a kernelspec keeps its pod template, relative to its folder."""
JINJA_TEMPLATE_PATH = Path("scripts") / "kernel-pod.yaml.j2"
"""Where an Enterprise Gateway 3.x kernelspec keeps its Jinja2 pod template, used when there is no ``TEMPLATE_PATH``."""


@dataclass(frozen=True)
class KernelSpecInfo:
    """The parts of a kernelspec a launch uses."""

    name: str
    language: str
    image: str
    resource_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    spark_context_mode: str = "none"
    interrupt_mode: str = "signal"
    kernel_class_name: str = ""

    @property
    def template_path(self) -> Path:
        """The kernelspec's ``scripts/kernel-pod.yaml``."""
        return self.resource_dir / TEMPLATE_PATH


def is_kubernetes_spec(kernel_json: Mapping[str, Any]) -> bool:
    """Whether ``kernel.json`` asks for a Kubernetes kernel (a process proxy class ending in ``KubernetesProcessProxy``)."""
    proxy = _mapping(_mapping(kernel_json.get("metadata")).get("process_proxy"))
    class_name = proxy.get("class_name")
    return isinstance(class_name, str) and class_name.endswith(KUBERNETES_PROXY_SUFFIX)


def kernel_spec_info(name: str, resource_dir: Path, kernel_json: Mapping[str, Any] | None = None) -> KernelSpecInfo:
    """A :class:`KernelSpecInfo` from a kernelspec folder (its ``kernel.json`` read unless given).

    Raises ``ValueError`` for a ``kernel.json`` whose fields have the wrong types.
    """
    if kernel_json is None:
        kernel_json = json.loads((resource_dir / "kernel.json").read_text(encoding="utf-8"))
    proxy = _mapping(_mapping(kernel_json.get("metadata")).get("process_proxy"))
    image = _mapping(proxy.get("config")).get("image_name") or DEFAULT_KERNEL_IMAGE
    env = _mapping(kernel_json.get("env"))
    if not isinstance(image, str) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ValueError(f"kernelspec {name}: image_name and env values must be strings")
    return KernelSpecInfo(
        name=name,
        language=str(kernel_json.get("language") or "python"),
        image=image,
        resource_dir=resource_dir,
        env=dict(env),
        spark_context_mode=spark_context_mode(kernel_json.get("argv") or []),
        interrupt_mode=str(kernel_json.get("interrupt_mode") or "signal"),
        kernel_class_name=_argument(kernel_json.get("argv") or [], (KERNEL_CLASS_ARGUMENT,)) or "",
    )


@dataclass(frozen=True)
class PodTemplateFile:
    """A kernelspec's pod template as read for one launch: where it is in the folder, and its text."""

    path: Path
    text: str

    @property
    def is_jinja(self) -> bool:
        """Whether it is an Enterprise Gateway 3.x ``kernel-pod.yaml.j2``."""
        return self.path == JINJA_TEMPLATE_PATH


def read_pod_template(resource_dir: Path) -> PodTemplateFile:
    """The folder's ``scripts/kernel-pod.yaml``, or else its ``scripts/kernel-pod.yaml.j2``.

    Blocking: the provisioner calls it through ``asyncio.to_thread`` at every
    launch.  Raises ``OSError`` when neither can be read (for a folder with
    neither, a ``FileNotFoundError`` for ``kernel-pod.yaml``).
    """
    try:
        return PodTemplateFile(TEMPLATE_PATH, (resource_dir / TEMPLATE_PATH).read_text(encoding="utf-8"))
    except FileNotFoundError as missing:
        try:
            return PodTemplateFile(JINJA_TEMPLATE_PATH, (resource_dir / JINJA_TEMPLATE_PATH).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise missing from None


def spark_context_mode(argv: Sequence[Any]) -> str:
    """The value after ``--RemoteProcessProxy.spark-context-initialization-mode`` (or EG 3's
    ``--spark-context-initialization-mode``; also with ``=``), else ``none``."""
    return _argument(argv, SPARK_MODE_ARGUMENTS) or "none"


def _argument(argv: Sequence[Any], names: Sequence[str]) -> str | None:
    """The value ``argv`` gives the first of ``names`` found (``--name value`` or ``--name=value``)."""
    items = [str(a) for a in argv]
    for index, item in enumerate(items):
        if item in names and index + 1 < len(items):
            return items[index + 1]
        name, sep, value = item.partition("=")
        if sep and name in names:
            return value
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
