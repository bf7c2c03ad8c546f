"""A kernel's endpoints: where its ZMQ channels and its launcher's comm port listen, and the key that signs.

One type for both places that hold them: the connection info a kernel's launcher reports
(:class:`gateway.provisioner.connection.ConnectionInfo` extends it with the kernel id and the
launcher's process ids) and the kernel's record (:mod:`gateway.objects.record`), which every
replica reads to reach a kernel it did not launch.  Both are checked by the same rules
(:func:`endpoints_problem`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from typing import Any

PORT_FIELDS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
"""The five Jupyter channels' ports, as the connection file names them."""
MAX_KEY_LENGTH = 1024
SIGNATURE_HASHES = frozenset(hashlib.algorithms_guaranteed - {"shake_128", "shake_256"})
"""The hashes an ``hmac-<hash>`` signature scheme may name: those every Python has, with a fixed length."""


@dataclass(frozen=True)
class KernelEndpoints:
    """The kernel's ZMQ endpoints and key, plus the launcher's comm port (0: none).

    ``key`` signs every Jupyter message and comm request: it is excluded from ``repr`` so it
    cannot reach a log line by accident.
    """

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

    def endpoint_fields(self) -> dict[str, Any]:
        """The fields of :class:`KernelEndpoints` alone (for the record of a richer connection info, or back)."""
        return {name: getattr(self, name) for name in _ENDPOINT_FIELDS}


_ENDPOINT_FIELDS = tuple(f.name for f in fields(KernelEndpoints))


def endpoints_problem(key: str, transport: str, signature_scheme: str) -> str | None:
    """The first of ``key``, ``transport`` and ``signature_scheme`` that the gateway does not accept, or ``None``.

    Called on a launcher's report and on a record read back: a key of 1 to
    :data:`MAX_KEY_LENGTH` characters, TCP, an HMAC signature scheme over a hash every Python has.
    """
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        return "key"
    if transport != "tcp":
        return "transport"
    if scheme_hash(signature_scheme) is None:
        return "signature_scheme"
    return None


def scheme_hash(signature_scheme: str) -> str | None:
    """The hash an ``hmac-<hash>`` signature scheme names (``sha256``), or ``None`` when it names none we have.

    A kernel whose messages the gateway could not sign is refused on its launcher's report
    (:func:`endpoints_problem`); :class:`gateway.kernels.signing.MessageSigner` signs with it.
    """
    prefix, _, name = signature_scheme.partition("-")
    return name if prefix == "hmac" and name in SIGNATURE_HASHES else None
