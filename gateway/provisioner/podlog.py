"""The last lines of a kernel container's log, for a failure's message, with the connection key hidden.

Two failures quote them: a pod that fails before its launcher calls back
(:mod:`gateway.provisioner.launchwait`), and a kernel that called back but does
not answer a ``kernel_info_request`` (:meth:`PodProvisioner.log_tail
<gateway.provisioner.pods.PodProvisioner.log_tail>`, asked by the kernel
service).  Either way the lines reach the client's error and the gateway's log.

A launcher may print the kernel's connection info: EG's ``launch_ipykernel.py``
logs the whole connection file, key included, at its default level (``DEBUG``).
So every ``"key": "..."`` field (JSON or a Python dict's repr) is masked, and so
is the key itself wherever it appears, when the gateway knows it.
"""

from __future__ import annotations

import asyncio
import re

from gateway.cluster.interface import Cluster, ClusterError

LOG_TAIL_LINES = 5
LOG_READ_TIMEOUT = 2.0
MAX_CHARS = 600
"""At most this many characters of the lines are quoted (the last ones: a traceback ends with its cause)."""
HIDDEN = "<hidden>"
LOG_LINES_MARK = "; last log lines: "
"""Where a failure's message goes on with the kernel's lines: they are answered to the client who started
the kernel and left out of the events about it, which others may read (``gateway.kernels.telemetry``)."""

_KEY_FIELD = re.compile(r"""(["']key["']\s*:\s*b?["'])[^"']*""")


async def log_tail(cluster: Cluster, name: str, namespace: str, *, key: str | None = None) -> str:
    """Pod ``name``'s kernel container's last lines, joined by `` | `` (``""`` when they cannot be read in time).

    The kernel container is named as its pod (``gateway.objects.pod.kernel_objects`` names it so).
    ``key``: the kernel's connection key, when the launcher has reported it.
    """
    try:
        text = await asyncio.wait_for(
            cluster.read_pod_log(name, namespace, container=name, tail_lines=LOG_TAIL_LINES), LOG_READ_TIMEOUT)
    except (ClusterError, asyncio.TimeoutError):
        return ""
    return quoted_lines(text, key=key)


def with_log_lines(message: str, tail: str) -> str:
    """``message`` followed by the lines :func:`log_tail` read (just ``message`` when there are none)."""
    return f"{message}{LOG_LINES_MARK}{tail}" if tail else message


def quoted_lines(text: str, *, key: str | None = None) -> str:
    """``text``'s non-blank lines joined by `` | ``, keys hidden (see the module docstring), at most :data:`MAX_CHARS`."""
    if key:
        text = text.replace(key, HIDDEN)
    text = _KEY_FIELD.sub(lambda match: match.group(1) + HIDDEN, text)
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())[-MAX_CHARS:]
