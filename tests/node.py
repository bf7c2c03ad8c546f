"""The simulated node as the tests run it.

``FAST`` restarts crashed containers within a second (a kubelet's 10s back-off
doubling to 5 minutes would outlast a test); :func:`node_agent` is node-1's
agent acting as its node user, stopping its pods' processes within a second;
:func:`script_image` makes an image whose entry point is a shell script, for
kernels that fail at once or never call back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fakes.auth.identity import node_user
from fakes.memory import MemoryCluster
from fakes.node.context import RestartBackoff
from fakes.node.images import ImageSpec
from fakes.node.kubelet import NodeAgent
from fakes.state.store import Store

FAST = RestartBackoff(initial=0.2, maximum=0.8, resync=0.05)
"""Restart and image-pull back-off of the tests' node agents."""


def node_agent(store: Store, work_dir: Path, **options: Any) -> NodeAgent:
    """An agent for ``node-1`` of ``store``'s cluster, as its node user, with the tests' fast timings.

    ``options`` are further :class:`~fakes.node.kubelet.NodeAgent` arguments (``images``, ``api_server_url``).
    """
    options.setdefault("backoff", FAST)
    options.setdefault("shutdown_grace_seconds", 1)
    return NodeAgent(MemoryCluster(store, node_user("node-1")), node_name="node-1", store=store, work_dir=work_dir,
                     **options)


def script_image(path: Path, body: str) -> ImageSpec:
    """An image whose ``/etc/bootstrap-kernel.sh`` is a shell script with ``body``, written to ``path``."""
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return ImageSpec(cmd=["/etc/bootstrap-kernel.sh"], env={"PATH": "/usr/bin:/bin"},
                     files={"/etc/bootstrap-kernel.sh": str(path)})


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line or environment contains ``text``.

    A kernel pod's process has the kernel id in its environment (``KERNEL_ID``); a launcher started
    by a test names it on its command line; a child kernel (``--kernel-cmd``) in its connection file's name.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if (text.encode() in cmdline or text.encode() in environ) and "State:\tZ" not in status:
            found.append(int(entry.name))
    return found
