"""The gateway's key pairs for launch payloads, and opening a payload with them.

The private keys are generated at start, live only in this process's memory,
and are never serialised or logged.  Launchers get the public halves through
their pod's environment, which is fine: a public key only lets them encrypt
*to* the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa, x25519

from gateway.launcher import protocol
from gateway.launcher.protocol import PayloadError

LEGACY_RSA_KEY_SIZE = 2048
"""EG generates 1024-bit keys; its launchers import any size (they only wrap a 16-byte AES key)."""


@dataclass(frozen=True)
class OpenedPayload:
    kernel_id: str
    version: int
    info: dict[str, Any]


class GatewayKeys:
    """Created once per gateway process (by the response listener unless given one)."""

    def __init__(self, *, legacy: bool = True) -> None:
        self._x25519 = x25519.X25519PrivateKey.generate()
        self._rsa = rsa.generate_private_key(public_exponent=65537, key_size=LEGACY_RSA_KEY_SIZE) if legacy else None
        # Every launch's pod carries both: encoded once.
        self._public_text = protocol.x25519_public_text(self._x25519)
        self._legacy_public_text = None if self._rsa is None else protocol.rsa_public_text(self._rsa)

    def __repr__(self) -> str:
        return f"GatewayKeys(legacy={self._rsa is not None})"

    @property
    def public_key(self) -> str:
        """Our launchers' ``KERNEL_RESPONSE_KEY``: base64 of the raw X25519 public key."""
        return self._public_text

    @property
    def legacy_public_key(self) -> str | None:
        """EG launchers' ``PUBLIC_KEY``: base64 DER of the RSA public key; ``None`` when legacy is off."""
        return self._legacy_public_text

    @property
    def accepts_legacy(self) -> bool:
        return self._rsa is not None

    @staticmethod
    def peek_kernel_id(envelope: dict[str, Any]) -> str | None:
        """The kernel id a version-2 envelope claims before decryption (``None`` for version 1)."""
        kernel_id = envelope.get("kernel_id") if envelope.get("version") == protocol.PAYLOAD_VERSION else None
        return kernel_id if isinstance(kernel_id, str) else None

    def open(self, envelope: dict[str, Any]) -> OpenedPayload:
        """Decrypt a parsed envelope (called by the response listener per received payload).

        Raises :class:`PayloadError` for an unknown or disallowed version and
        for anything that fails to decrypt or authenticate.
        """
        version = envelope.get("version")
        if version == protocol.PAYLOAD_VERSION:
            info = protocol.open_v2(envelope, self._x25519)
        elif version == protocol.LEGACY_PAYLOAD_VERSION:
            if self._rsa is None:
                raise PayloadError("legacy (version 1) payloads are switched off")
            info = protocol.open_v1(envelope, self._rsa)
        else:
            # Version 0 (EG's oldest launchers) is refused on purpose: its AES key is
            # kernel_id[:16], which anyone who knows the kernel id knows, so it is not
            # encryption under any secret.
            raise PayloadError(f"payload version {version!r} is not accepted")
        kernel_id = info.get("kernel_id")
        if not isinstance(kernel_id, str) or not kernel_id:
            raise PayloadError("the connection info names no kernel id")
        return OpenedPayload(kernel_id=kernel_id, version=version, info=info)
