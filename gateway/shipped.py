"""Where kernelgate's files other than its modules are: kernelspecs, the kernel images' bootstrap
scripts, the deployment manifest.

In a source checkout (an editable install, or running from the tree) they are the checkout's own
``kernelspecs/``, ``images/`` and ``manifests/``. An installed kernelgate carries copies of the
same files under ``<prefix>/share/kernelgate/`` (``[tool.setuptools.data-files]`` in
pyproject.toml), and reads them there. Called at import time by ``gateway.config`` (the
packaged kernelspecs) and by the simulated cluster (``fakes.node.kernel_images``,
``fakes.manifests``).
"""

from __future__ import annotations

import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
"""The folder holding the ``gateway`` package: a source checkout, or site-packages when installed."""
INSTALLED = Path(sys.prefix) / "share" / "kernelgate"
"""Where an installed kernelgate keeps its files."""


def shipped_root() -> Path:
    """The folder holding ``kernelspecs/``, ``images/`` and ``manifests/``: the checkout's, else the installed copy."""
    return CHECKOUT if (CHECKOUT / "kernelspecs").is_dir() else INSTALLED
