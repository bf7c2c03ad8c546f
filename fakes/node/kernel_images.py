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

import sys
from pathlib import Path

from fakes.node.images import STANDARD_PATH, ImageMap, ImageSpec
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
