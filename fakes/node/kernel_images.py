"""The kernel images on the simulated node: ``elyra/kernel-py`` and ``kernelgate/kernel-py`` run this repository's launcher.

A real kernel-py image (``images/kernel-py/Dockerfile``) holds
``/etc/bootstrap-kernel.sh``, which runs ``python -m gateway.launcher``.  On
the simulated node the same script runs from ``images/kernel-py/`` with the
Python interpreter running this process first on ``PATH`` and this
repository on ``PYTHONPATH``, so the pod runs the launcher and IPython kernel
installed here.  The images built on ``images/kernel-common`` (``kernelgate/kernel-r``,
``kernel-spark-py``...) run that shared script the same way.  Used by the embedded simulated cluster and by tests.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from fakes.node.images import STANDARD_PATH, ImageMap, ImageSpec, parse_image
from gateway.shipped import shipped_root

KERNEL_IMAGE_REPOSITORIES = ("elyra/kernel-py", "kernelgate/kernel-py")
"""Every tag and digest of these repositories is a Python kernel image."""
BOOTSTRAP_IN_IMAGE = "/etc/bootstrap-kernel.sh"
BOOTSTRAP = Path("images") / "kernel-py" / "bootstrap-kernel.sh"
SHARED_BOOTSTRAP_REPOSITORIES = tuple(
    f"kernelgate/kernel-{name}" for name in ("tf-py", "r", "scala", "spark-py", "spark-r", "spark-scala")
)
"""Images built with ``images/kernel-common/bootstrap-kernel.sh``: it runs the kernel for KERNEL_LANGUAGE
when this node has it (R, almond), and fails the pod as the image would otherwise."""
SHARED_BOOTSTRAP = Path("images") / "kernel-common" / "bootstrap-kernel.sh"


def repository_root() -> Path:
    """The folder holding ``kernelspecs/``, ``images/`` and ``manifests/``: this checkout, or an installed copy
    of those files (``gateway.shipped``)."""
    return shipped_root()


def kernel_image_spec(repo_root: Path | None = None, bootstrap: Path = BOOTSTRAP) -> ImageSpec:
    """How a kernel container runs here: the image's ``/etc/bootstrap-kernel.sh`` is this checkout's ``bootstrap``."""
    root = (repo_root or repository_root()).resolve()
    script = root / bootstrap
    env = {
        "PATH": f"{Path(sys.executable).parent}:{STANDARD_PATH}",
        "PYTHONPATH": str(root),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    return ImageSpec(cmd=[BOOTSTRAP_IN_IMAGE], env=env, files={BOOTSTRAP_IN_IMAGE: str(script)})


SPARK_REPOSITORIES = tuple(f"kernelgate/kernel-spark-{name}" for name in ("py", "r", "scala"))
"""Spark's images: the simulated node has no Spark, and the launcher starts no Spark context."""
RUNTIMES = {"kernelgate/kernel-r": ("R", "R"), "kernelgate/kernel-scala": ("almond", "/opt/almond/almond")}
"""What each language's image runs its kernel with, and where (``images/kernel-common/bootstrap-kernel.sh``)."""


def why_not_runnable(image: str, images: ImageMap) -> str:
    """Why a kernel pod of ``image`` can only fail on a simulated node with ``images`` on this machine; "" if it runs.

    Asked by the embedded cluster for the kernelspecs it offers (``gateway.app``): R and Scala kernels
    need R or almond installed where the node runs them, and Spark's images have no Spark here.  An
    image the node does not know is not judged: its launch fails as a pull of it would.
    """
    spec = images.resolve(image)
    if spec is None:
        return ""
    try:
        repository = parse_image(image).repository.removeprefix("docker.io/")
    except ValueError:
        return f"{image} is not an image reference"
    if repository in SPARK_REPOSITORIES:
        return "Spark does not run on the simulated node"
    if repository in RUNTIMES:
        name, program = RUNTIMES[repository]
        if shutil.which(program, path=spec.env.get("PATH")) is None:
            return f"{name} is not installed on this machine"
    return ""


def kernel_image_map(repo_root: Path | None = None) -> ImageMap:
    """``ImageMap.default()`` plus the kernel images (a new map each call)."""
    images = ImageMap.default()
    spec = kernel_image_spec(repo_root)
    for repository in KERNEL_IMAGE_REPOSITORIES:
        images.add(repository, spec)
    shared = kernel_image_spec(repo_root, SHARED_BOOTSTRAP)
    for repository in SHARED_BOOTSTRAP_REPOSITORIES:
        images.add(repository, shared)
    return images
