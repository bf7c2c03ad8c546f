"""The kernel's connection info: its ports and key, the file the kernel reads them from, and the sealed payload."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from . import protocol
from .ports import reserve_ports

log = logging.getLogger("gateway.launcher")


def reserve_kernel_ports(bind_ip: str, port_range: tuple[int, int] | None) -> tuple[list[socket.socket], socket.socket, dict[str, Any]]:
    """Reserve the kernel's five ports and the comm port; return their sockets and the connection info.

    Called first by both ways a pod runs its kernel (:mod:`gateway.launcher.inprocess`,
    :mod:`gateway.launcher.supervise`); raises ``OSError`` when the ports cannot be had.
    """
    sockets = reserve_ports(bind_ip, 6, port_range)
    kernel_sockets, comm_socket = sockets[:5], sockets[5]
    return kernel_sockets, comm_socket, connection_info([s.getsockname()[1] for s in kernel_sockets], bind_ip)


def connection_info(ports: Sequence[int], bind_ip: str) -> dict[str, Any]:
    """The kernel's connection file, with a fresh random key for signing its messages."""
    shell, iopub, stdin, control, hb = ports
    return {
        "shell_port": shell,
        "iopub_port": iopub,
        "stdin_port": stdin,
        "control_port": control,
        "hb_port": hb,
        "ip": bind_ip,
        "key": secrets.token_hex(32),
        "transport": "tcp",
        "signature_scheme": "hmac-sha256",
    }


def write_connection_file(kernel_id: str, info: Mapping[str, Any]) -> str:
    """The kernel's connection file, readable by this user only (removed with :func:`remove_file`)."""
    safe_id = re.sub(r"[^A-Za-z0-9-]", "", kernel_id)[:36]
    fd, path = tempfile.mkstemp(prefix=f"kernel-{safe_id}-", suffix=".json")
    with os.fdopen(fd, "w") as handle:  # mkstemp creates the file with mode 0600
        json.dump(dict(info), handle)
    return path


def remove_file(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def sealed_payload(info: Mapping[str, Any], *, comm_port: int, kernel_id: str, key: protocol.ResponseKey) -> bytes:
    """The payload for the gateway: the connection info, the comm port and this process's ids, encrypted to ``key``.

    Raises :class:`~gateway.launcher.protocol.PayloadError` when no payload can be sealed to the key.
    """
    content = dict(info, comm_port=comm_port, pid=os.getpid(), pgid=os.getpgid(0), kernel_id=kernel_id)
    if key.x25519 is not None:
        return protocol.seal_v2(content, kernel_id, key.x25519)
    assert key.rsa is not None
    log.warning("the gateway gave an RSA key: sending the legacy (unauthenticated) payload format")
    return protocol.seal_v1(content, key.rsa)
