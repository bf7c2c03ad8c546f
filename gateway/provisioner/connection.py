"""A running kernel's connection info, as its launcher reported it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.launcher.protocol import PayloadError
from gateway.objects.endpoints import PORT_FIELDS, KernelEndpoints, endpoints_problem

_PROBLEMS = {
    "key": "the connection info's 'key' has a bad length",
    "transport": "the connection info's transport is not tcp",
    "signature_scheme": "the connection info's signature scheme is not hmac-<hash> with a hash the gateway has (hmac-sha256)",
}


@dataclass(frozen=True, kw_only=True)
class ConnectionInfo(KernelEndpoints):
    """The kernel's endpoints as its launcher reported them, with the kernel's id and the launcher's process ids."""

    kernel_id: str
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

        ports = {name: need(name, int) for name in PORT_FIELDS}
        for name, port in ports.items():
            if not 0 < port < 65536:
                raise PayloadError(f"the connection info's {name!r} is not a port")
        comm_port = need("comm_port", int, 0)
        if not 0 <= comm_port < 65536:
            raise PayloadError("the connection info's 'comm_port' is not a port")
        key = need("key", str)
        transport = need("transport", str, "tcp")
        scheme = need("signature_scheme", str, "hmac-sha256")
        problem = endpoints_problem(key, transport, scheme)
        if problem is not None:
            raise PayloadError(_PROBLEMS[problem])
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
        info: dict[str, Any] = {name: getattr(self, name) for name in PORT_FIELDS}
        info.update(ip=self.ip, key=self.key, transport=self.transport, signature_scheme=self.signature_scheme)
        return info
