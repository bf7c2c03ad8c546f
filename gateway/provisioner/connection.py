"""A running kernel's connection info, as its launcher reported it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.launcher.protocol import PayloadError

_PORT_FIELDS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
_MAX_KEY_LENGTH = 1024


@dataclass(frozen=True)
class ConnectionInfo:
    """The kernel's ZMQ endpoints and key, plus the launcher's comm port.

    ``key`` signs every Jupyter message and comm request: it is excluded from
    ``repr`` so it cannot reach a log line by accident.
    """

    kernel_id: str
    ip: str
    shell_port: int
    iopub_port: int
    stdin_port: int
    control_port: int
    hb_port: int
    key: str = field(repr=False)
    transport: str = "tcp"
    signature_scheme: str = "hmac-sha256"
    comm_port: int = 0
    pid: int = 0
    pgid: int = 0

    @classmethod
    def from_payload(cls, info: Mapping[str, Any]) -> ConnectionInfo:
        """Validate a decrypted payload (called by the response listener).

        Raises :class:`PayloadError` naming the first bad field (never its value).
        """

        def need(name: str, kind: type, default: Any = dataclasses.MISSING) -> Any:
            value = info.get(name, default)
            if value is dataclasses.MISSING:
                raise PayloadError(f"the connection info lacks {name!r}")
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise PayloadError(f"the connection info's {name!r} has the wrong type")
            return value

        ports = {name: need(name, int) for name in _PORT_FIELDS}
        for name, port in ports.items():
            if not 0 < port < 65536:
                raise PayloadError(f"the connection info's {name!r} is not a port")
        comm_port = need("comm_port", int, 0)
        if not 0 <= comm_port < 65536:
            raise PayloadError("the connection info's 'comm_port' is not a port")
        key = need("key", str)
        if not 0 < len(key) <= _MAX_KEY_LENGTH:
            raise PayloadError("the connection info's 'key' has a bad length")
        transport = need("transport", str, "tcp")
        if transport != "tcp":
            raise PayloadError("the connection info's transport is not tcp")
        scheme = need("signature_scheme", str, "hmac-sha256")
        if not scheme.startswith("hmac-"):
            raise PayloadError("the connection info's signature scheme is not hmac-*")
        return cls(
            kernel_id=need("kernel_id", str),
            ip=need("ip", str, "0.0.0.0"),
            key=key,
            transport=transport,
            signature_scheme=scheme,
            comm_port=comm_port,
            pid=need("pid", int, 0),
            pgid=need("pgid", int, 0),
            **ports,
        )

    def with_ip(self, ip: str) -> ConnectionInfo:
        return dataclasses.replace(self, ip=ip)

    def to_jupyter(self) -> dict[str, Any]:
        """The connection-file dict jupyter_client's ``load_connection_info`` takes."""
        info: dict[str, Any] = {name: getattr(self, name) for name in _PORT_FIELDS}
        info.update(ip=self.ip, key=self.key, transport=self.transport, signature_scheme=self.signature_scheme)
        return info
