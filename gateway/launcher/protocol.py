"""Wire formats shared by the launcher (in the pod) and the gateway.

Two exchanges cross the network between a kernel pod and the gateway:

1. **The launch payload**: the launcher's one message to the gateway's
   response port, carrying the kernel's connection info (ports and the
   connection key).  The sender closes its side to end the payload.

   * Version 2 (ours): ``{"version": 2, "kernel_id", "epk", "nonce", "ct"}``.
     The launcher generates an ephemeral X25519 key, agrees a secret with the
     gateway's public X25519 key, derives a ChaCha20-Poly1305 key with
     HKDF-SHA256 over both public keys, and seals the connection-info JSON with
     the version and kernel id as associated data: tampering, or moving a
     payload to another kernel id, fails authentication.
   * Version 1 (Enterprise Gateway's, so EG kernel images keep working):
     ``b64(json{"version": 1, "key": b64(RSA-PKCS1v1.5(aes_key)),
     "conn_info": b64(AES-ECB(PKCS7(json)))})`` with a 16-byte AES key.  It is
     confidential but not authenticated; the gateway only accepts it when the
     operator allows legacy payloads.

   Neither version authenticates the *sender*: the gateway's public key is in
   the pod spec, so anyone who can read it can encrypt to it.  The gateway
   authenticates the sender by peer address (the pod IP) and by accepting one
   payload per expected kernel.

2. **Comm requests**: the gateway's messages to the launcher's comm port, one
   JSON object per connection, ended by the sender closing its side:
   ``{"signum": n}`` signals the kernel, ``{"shutdown": 1}`` stops it.  This is
   EG's protocol; we add ``ts``, ``nonce`` and ``sig`` (an HMAC-SHA256 under the
   kernel's connection key) so that no other cluster peer can interrupt or
   kill someone's kernel.  EG launchers ignore the extra fields.  Our launcher
   answers an accepted request with :data:`COMM_ACK` before closing, and closes
   without a word otherwise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import purecrypto

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa, x25519

# ``cryptography`` is imported by the functions below that need it, never by importing this module:
# a launcher sealing a version-2 payload (purecrypto) does not load it at all (start-up time and the
# kernel's memory), and only the gateway and a launcher given an RSA key (EG's format) do.

PAYLOAD_VERSION = 2
LEGACY_PAYLOAD_VERSION = 1

_HKDF_INFO = b"kernelgate launch payload v2"
_AAD_PREFIX = b"kernelgate launch payload\x00"
_NONCE_BYTES = 12

COMM_ACK = b'{"status": "ok"}'
"""What our launcher writes back for an accepted comm request."""

COMM_MAX_REQUEST_BYTES = 4096
COMM_MAX_CLOCK_SKEW_SECONDS = 120
"""A signed comm request older or newer than this (by its ``ts``) is refused."""


class PayloadError(ValueError):
    """A launch payload that cannot be opened or does not say what it must.

    The message names what was wrong, never the payload's contents.
    """


# --------------------------------------------------------------------------- keys


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str | bytes, what: str) -> bytes:
    """Strict standard base64; raises :class:`PayloadError` naming ``what``."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise PayloadError(f"{what} is not valid base64") from exc


@dataclass(frozen=True)
class ResponseKey:
    """The gateway's public key as given to a launcher.

    ``x25519`` is set for our key format (the raw 32 bytes; given as base64), ``rsa`` for
    Enterprise Gateway's (base64 DER SubjectPublicKeyInfo, no PEM armour).
    """

    x25519: bytes | None = None
    rsa: rsa.RSAPublicKey | None = None

    @classmethod
    def parse(cls, text: str) -> ResponseKey:
        """Called by the launcher on its ``--public-key`` / ``KERNEL_RESPONSE_KEY`` value."""
        raw = b64decode(text.strip(), "the response key")
        if len(raw) == 32:  # every 32-byte string is an X25519 public key
            return cls(x25519=raw)
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        try:
            key = serialization.load_der_public_key(raw)
        except ValueError as exc:
            raise PayloadError("the response key is neither X25519 nor an RSA public key") from exc
        if not isinstance(key, rsa.RSAPublicKey):
            raise PayloadError("the response key is neither X25519 nor an RSA public key")
        return cls(rsa=key)

    @classmethod
    def choose(cls, texts: Sequence[str]) -> ResponseKey:
        """The best of the keys a launcher was given (called once at launcher start).

        An X25519 key wins over an RSA one wherever it came from: an EG-style
        bootstrap passes ``--public-key $PUBLIC_KEY`` (the RSA key) while our
        gateway also sets ``KERNEL_RESPONSE_KEY``.  Unusable keys are skipped;
        raises :class:`PayloadError` if none is usable.  RSA keys are only
        parsed when no X25519 key was given: parsing one loads ``cryptography``.
        """
        for text in texts:
            try:
                raw = b64decode(text.strip(), "the response key")
            except PayloadError:
                continue
            if len(raw) == 32:
                return cls(x25519=raw)
        for text in texts:
            try:
                return cls.parse(text)
            except PayloadError:
                continue
        raise PayloadError("no usable response key (neither X25519 nor an RSA public key)")


def x25519_public_text(key: x25519.X25519PrivateKey) -> str:
    """The base64 form of a private key's public half, as launchers expect it."""
    from cryptography.hazmat.primitives import serialization

    return b64encode(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def rsa_public_text(key: rsa.RSAPrivateKey) -> str:
    """EG's form of an RSA public key: base64 DER SubjectPublicKeyInfo (a PEM without armour)."""
    from cryptography.hazmat.primitives import serialization

    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64encode(der)


# --------------------------------------------------------------------------- payload v2


def _v2_key(shared_secret: bytes, epk_raw: bytes, gateway_raw: bytes) -> bytes:
    # Both public keys go into the derivation so a key is bound to this exact exchange.
    return purecrypto.hkdf_sha256(shared_secret, info=_HKDF_INFO + epk_raw + gateway_raw)


def _v2_associated_data(kernel_id: str) -> bytes:
    return _AAD_PREFIX + str(PAYLOAD_VERSION).encode() + b"\x00" + kernel_id.encode("utf-8")


def seal_v2(connection_info: Mapping[str, Any], kernel_id: str, gateway_key: bytes) -> bytes:
    """Encrypt connection info for the gateway's raw X25519 public key (called by the launcher, once per launch).

    Raises :class:`PayloadError` for a gateway key of low order (no secret can be agreed with it).
    """
    ephemeral, epk_raw = purecrypto.x25519_keypair()
    try:
        shared = purecrypto.x25519_exchange(ephemeral, gateway_key)
    except ValueError as exc:
        raise PayloadError("the gateway's X25519 key is unusable") from exc
    key = _v2_key(shared, epk_raw, gateway_key)
    nonce = os.urandom(_NONCE_BYTES)
    plaintext = json.dumps(dict(connection_info)).encode("utf-8")
    ciphertext = purecrypto.chacha20_poly1305_encrypt(key, nonce, plaintext, _v2_associated_data(kernel_id))
    envelope = {
        "version": PAYLOAD_VERSION,
        "kernel_id": kernel_id,
        "epk": b64encode(epk_raw),
        "nonce": b64encode(nonce),
        "ct": b64encode(ciphertext),
    }
    return json.dumps(envelope).encode("utf-8")


def open_v2(envelope: Mapping[str, Any], gateway_key: x25519.X25519PrivateKey) -> dict[str, Any]:
    """Decrypt and authenticate a version-2 envelope (called by the gateway).

    Returns the connection-info object; raises :class:`PayloadError` on any
    tampering, a kernel id that differs from the one sealed, or bad encoding.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import x25519
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    kernel_id = envelope.get("kernel_id")
    if not isinstance(kernel_id, str) or not kernel_id:
        raise PayloadError("the payload names no kernel id")
    fields = {}
    for name in ("epk", "nonce", "ct"):
        value = envelope.get(name)
        if not isinstance(value, str):
            raise PayloadError(f"the payload has no {name!r}")
        fields[name] = b64decode(value, name)
    if len(fields["epk"]) != 32 or len(fields["nonce"]) != _NONCE_BYTES:
        raise PayloadError("the payload's key or nonce has the wrong length")
    gateway_raw = gateway_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        shared = gateway_key.exchange(x25519.X25519PublicKey.from_public_bytes(fields["epk"]))
    except ValueError as exc:  # a low-order point gives an all-zero secret, which OpenSSL refuses
        raise PayloadError("the payload's ephemeral key is unusable") from exc
    key = _v2_key(shared, fields["epk"], gateway_raw)
    try:
        plaintext = ChaCha20Poly1305(key).decrypt(fields["nonce"], fields["ct"], _v2_associated_data(kernel_id))
    except InvalidTag as exc:
        raise PayloadError("the payload failed authentication") from exc
    info = _json_object(plaintext, "the connection info")
    if info.get("kernel_id") != kernel_id:
        raise PayloadError("the connection info names another kernel")
    return info


# --------------------------------------------------------------------------- payload v1 (EG)


def seal_v1(connection_info: Mapping[str, Any], gateway_key: rsa.RSAPublicKey) -> bytes:
    """Enterprise Gateway's version-1 payload, for a gateway that only gave us an RSA key.

    Weaker than version 2 (ECB, no authentication); the launcher uses it only
    when its response key is RSA, i.e. when started by an EG-style kernelspec.
    """
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    aes_key = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(json.dumps(dict(connection_info)).encode("utf-8")) + padder.finalize()
    encryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).encryptor()
    conn_info = encryptor.update(padded) + encryptor.finalize()
    wrapped_key = gateway_key.encrypt(aes_key, asym_padding.PKCS1v15())
    envelope = {"version": LEGACY_PAYLOAD_VERSION, "key": b64encode(wrapped_key), "conn_info": b64encode(conn_info)}
    return base64.b64encode(json.dumps(envelope).encode("utf-8"))


def open_v1(envelope: Mapping[str, Any], gateway_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """Decrypt EG's version-1 envelope (called by the gateway when legacy payloads are allowed)."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    wrapped = envelope.get("key")
    body = envelope.get("conn_info")
    if not isinstance(wrapped, str) or not isinstance(body, str):
        raise PayloadError("the legacy payload lacks 'key' or 'conn_info'")
    try:
        aes_key = gateway_key.decrypt(b64decode(wrapped, "key"), asym_padding.PKCS1v15())
    except ValueError as exc:
        raise PayloadError("the legacy payload's key does not decrypt") from exc
    if len(aes_key) not in (16, 24, 32):
        raise PayloadError("the legacy payload's key does not decrypt")
    ciphertext = b64decode(body, "conn_info")
    if not ciphertext or len(ciphertext) % 16:
        raise PayloadError("the legacy payload's body is not whole AES blocks")
    decryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plaintext = unpadder.update(decryptor.update(ciphertext) + decryptor.finalize()) + unpadder.finalize()
    except ValueError as exc:
        raise PayloadError("the legacy payload does not decrypt") from exc
    return _json_object(plaintext, "the connection info")


def parse_envelope(data: bytes) -> dict[str, Any]:
    """Read the outer envelope of either version (called by the gateway on each received payload).

    Version 2 is sent as JSON; version 1 as base64 of JSON.
    """
    text = data.strip()
    if text.startswith(b"{"):
        return _json_object(text, "the payload")
    return _json_object(b64decode(text, "the payload"), "the payload")


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise PayloadError(f"{what} is not a JSON object")
    return value


# --------------------------------------------------------------------------- comm requests


def _comm_message(kernel_id: str, signum: int | None, shutdown: bool, ts: int, nonce: str) -> bytes:
    action = f"signum={'-' if signum is None else signum};shutdown={int(shutdown)}"
    return b"\x00".join(
        [b"kernelgate comm request", kernel_id.encode(), action.encode(), str(ts).encode(), nonce.encode()]
    )


def _comm_sig(key: str, message: bytes) -> str:
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign_comm_request(
    *, kernel_id: str, key: str, now: float, signum: int | None = None, shutdown: bool = False
) -> dict[str, Any]:
    """Build a signed comm request (called by the gateway before each signal or shutdown)."""
    ts = int(now)
    nonce = secrets.token_hex(16)
    request: dict[str, Any] = {"ts": ts, "nonce": nonce}
    if signum is not None:
        request["signum"] = signum
    if shutdown:
        request["shutdown"] = 1
    request["sig"] = _comm_sig(key, _comm_message(kernel_id, signum, shutdown, ts, nonce))
    return request


@dataclass(frozen=True)
class CommRequest:
    """A verified comm request: what the launcher should do."""

    signum: int | None
    shutdown: bool
    nonce: str
    ts: int


class CommRequestRejected(ValueError):
    """A comm request that is unsigned, badly signed, stale or malformed."""


def verify_comm_request(request: Any, *, kernel_id: str, key: str, now: float) -> CommRequest:
    """Check a comm request's signature and freshness (called by the launcher per request).

    Replay of a still-fresh request is the caller's to refuse, by its nonce.
    """
    if not isinstance(request, dict):
        raise CommRequestRejected("not a JSON object")
    sig, ts, nonce = request.get("sig"), request.get("ts"), request.get("nonce")
    if not isinstance(sig, str) or not isinstance(nonce, str) or not 0 < len(nonce) <= 64:
        raise CommRequestRejected("unsigned")
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise CommRequestRejected("no timestamp")
    signum = request.get("signum")
    if signum is not None and (not isinstance(signum, int) or isinstance(signum, bool) or not 0 <= signum < 65):
        raise CommRequestRejected("bad signal number")
    shutdown = request.get("shutdown")
    if shutdown not in (None, 0, 1, True, False):
        raise CommRequestRejected("bad shutdown flag")
    expected = _comm_sig(key, _comm_message(kernel_id, signum, bool(shutdown), ts, nonce))
    if not hmac.compare_digest(expected, sig):
        raise CommRequestRejected("bad signature")
    if abs(now - ts) > COMM_MAX_CLOCK_SKEW_SECONDS:
        raise CommRequestRejected("stale")
    return CommRequest(signum=signum, shutdown=bool(shutdown), nonce=nonce, ts=ts)
