"""The images the kind target builds: the gateway, and the Python kernel the scenarios start.

Tags come from what the cluster will ask for: the gateway's from the
manifest's Deployment, the kernel's from the ``python_kubernetes``
kernelspec (``process_proxy.config.image_name``), so a renamed image cannot
leave kind pulling one that does not exist.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from .deploy import GATEWAY, MANIFEST, REPO

BUILD_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Image:
    dockerfile: Path
    tags: tuple[str, ...]


def gateway_image(manifest: Path = MANIFEST) -> str:
    with manifest.open(encoding="utf-8") as stream:
        for doc in yaml.safe_load_all(stream):
            if doc and doc.get("kind") == "Deployment" and doc["metadata"]["name"] == GATEWAY:
                return next(c["image"] for c in doc["spec"]["template"]["spec"]["containers"] if c["name"] == GATEWAY)
    raise LookupError(f"{manifest} has no Deployment {GATEWAY}")


def kernel_image(kernelspec: Path = REPO / "kernelspecs" / "python_kubernetes") -> str:
    spec = json.loads((kernelspec / "kernel.json").read_text(encoding="utf-8"))
    return spec["metadata"]["process_proxy"]["config"]["image_name"]


IMAGES = (
    Image(REPO / "images" / "gateway" / "Dockerfile", (gateway_image(),)),
    Image(REPO / "images" / "kernel-py" / "Dockerfile", tuple(dict.fromkeys((kernel_image(), "kernelgate/kernel-py:dev")))),
)


def build(image: Image, context: Path, docker: str = "docker") -> None:
    """``docker build`` of ``image`` from the repository root (the Dockerfiles copy from it)."""
    command = [docker, "build", "-f", str(image.dockerfile)]
    for tag in image.tags:
        command += ["-t", tag]
    subprocess.run([*command, str(context)], check=True, timeout=BUILD_TIMEOUT)
