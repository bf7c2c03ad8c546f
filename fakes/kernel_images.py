"""The kernel images on the simulated node: ``elyra/kernel-py`` and ``kernelgate/kernel-py`` run this repository's launcher.

A real kernel-py image (``images/kernel-py/Dockerfile``) holds
``/etc/bootstrap-kernel.sh``, which runs ``python -m gateway.launcher``.  On
the simulated node the same script runs from ``images/kernel-py/`` with the
Python interpreter running this process first on ``PATH`` and this
repository on ``PYTHONPATH``, so the pod runs the launcher and IPython kernel
installed here.  Used by the embedded simulated cluster and by tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fakes.images import STANDARD_PATH, ImageMap, ImageSpec

KERNEL_IMAGE_REPOSITORIES = ("elyra/kernel-py", "kernelgate/kernel-py")
"""Every tag and digest of these repositories is a Python kernel image."""
BOOTSTRAP_IN_IMAGE = "/etc/bootstrap-kernel.sh"
BOOTSTRAP = Path("images") / "kernel-py" / "bootstrap-kernel.sh"


def repository_root() -> Path:
    """The checkout this module belongs to (``fakes/`` sits at its top)."""
    return Path(__file__).resolve().parent.parent


def kernel_image_spec(repo_root: Path | None = None) -> ImageSpec:
    """How a kernel-py container runs here: the image's ``/etc/bootstrap-kernel.sh`` is this checkout's script."""
    root = (repo_root or repository_root()).resolve()
    script = root / BOOTSTRAP
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
    return images
