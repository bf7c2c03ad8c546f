"""Inside a pod of the simulated node: a wildcard IPv4 bind lands on the pod's own address.

In a pod's network namespace ``0.0.0.0`` means the pod's address; on the simulated node every
pod shares this host's network, each with an address of its own (``fakes.node.addresses``), so
two replicas binding ``0.0.0.0:8888`` would fight over one port.  The node puts this directory
first on ``PYTHONPATH`` for the images that serve on ``0.0.0.0`` (the gateway's:
``fakes.node.gateway_image``), so Python imports this module at start-up; it binds such
sockets to the address the pod's hostname has in the pod's kubelet-managed ``/etc/hosts``
(``fakes.node.sandbox``).  Outside a pod sandbox (no managed hosts file) binds are left alone.
"""

from __future__ import annotations

import socket
from typing import Any

MANAGED_HOSTS_HEADER = "# Kubernetes-managed hosts file."


def pod_address(hosts_text: str, hostname: str) -> str | None:
    """The IPv4 address ``hostname`` has in a kubelet-managed hosts file, else ``None``."""
    lines = hosts_text.splitlines()
    if not lines or lines[0].strip() != MANAGED_HOSTS_HEADER:
        return None
    for line in lines[1:]:
        fields = line.split()
        if len(fields) >= 2 and hostname in fields[1:] and fields[0].count(".") == 3:
            return fields[0]
    return None


def _install() -> None:
    try:
        with open("/etc/hosts") as hosts:
            address = pod_address(hosts.read(), socket.gethostname())
    except OSError:
        return
    if address is None:
        return
    wildcard_bind = socket.socket.bind

    def bind(self: socket.socket, where: Any) -> None:
        if self.family == socket.AF_INET and isinstance(where, tuple) and where[0] in ("", "0.0.0.0"):
            where = (address, *where[1:])
        wildcard_bind(self, where)

    socket.socket.bind = bind  # type: ignore[method-assign,assignment]


_install()
