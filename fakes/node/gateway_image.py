"""The gateway's image on the simulated node: ``kernelgate/gateway`` runs the kernelgate installed here.

``images/gateway/Dockerfile`` installs kernelgate and runs ``kernelgate serve --ip 0.0.0.0
--port 8888``; the manifests (``manifests/enterprise-gateway.yaml``) run the same command.  On
the simulated node the image runs the ``kernelgate`` beside the Python interpreter running
this process (its directory first on ``PATH``, this checkout on ``PYTHONPATH``).  Inside its
pod the gateway finds what a kubelet gives it: ``KUBERNETES_SERVICE_HOST``/``PORT`` and the
service account's files (``fakes.node.sandbox``), so its in-cluster configuration works as on
a real cluster; its binds of ``0.0.0.0`` land on the pod's address (``fakes/node/podnet``).

:func:`repository_image_map` is the node's map in ``kernelgate cluster``: base images, the
kernel images (``fakes.node.kernel_images``) and this one.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fakes.node.images import STANDARD_PATH, ImageMap, ImageSpec
from fakes.node.kernel_images import kernel_image_map, repository_root

GATEWAY_IMAGE_REPOSITORIES = ("kernelgate/gateway",)
"""Every tag and digest of these repositories is the gateway's image."""
GATEWAY_COMMAND = ["kernelgate", "serve", "--ip", "0.0.0.0", "--port", "8888"]
"""The image's ``CMD`` (images/gateway/Dockerfile)."""
POD_NETWORK = Path(__file__).resolve().parent / "podnet"
"""The ``sitecustomize`` that puts a pod's wildcard binds on its own address."""


def gateway_image_spec(repo_root: Path | None = None) -> ImageSpec:
    """How a gateway container runs here."""
    root = (repo_root or repository_root()).resolve()
    env = {
        "PATH": f"{Path(sys.executable).parent}:{STANDARD_PATH}",
        "PYTHONPATH": f"{POD_NETWORK}:{root}",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return ImageSpec(cmd=list(GATEWAY_COMMAND), env=env)


def repository_image_map(repo_root: Path | None = None) -> ImageMap:
    """``kernel_image_map()`` plus the gateway's image (a new map each call)."""
    images = kernel_image_map(repo_root)
    spec = gateway_image_spec(repo_root)
    for repository in GATEWAY_IMAGE_REPOSITORIES:
        images.add(repository, spec)
    return images
