"""X25519 (RFC 7748), HKDF-SHA256 (RFC 5869) and ChaCha20-Poly1305 (RFC 8439) with the standard library only.

The launcher seals one version-2 payload per kernel start
(:func:`gateway.launcher.protocol.seal_v2`).  Importing ``cryptography`` for
that would put about 15 ms of imports on every kernel's start-up path and
keep several MB of its libraries resident in the kernel's process for the
kernel's whole life; these functions cost a few milliseconds once and
nothing afterwards.  The gateway opens payloads with ``cryptography``
(:func:`gateway.launcher.protocol.open_v2`); the tests check both against
each other and against the RFCs' test vectors.

Nothing here runs in constant time.  The secrets it handles are an
ephemeral key used for a single exchange and the key derived from it, both
inside the kernel pod's own process and discarded once the payload is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

_P = 2**255 - 19
_A24 = 121665
_BASE_POINT = (9).to_bytes(32, "little")
_MASK32 = 0xFFFFFFFF


# --------------------------------------------------------------------------- X25519


def x25519(scalar: bytes, u_coordinate: bytes) -> bytes:
    """The X25519 function: ``scalar`` times the point ``u_coordinate`` (both 32 bytes, little-endian)."""
    if len(scalar) != 32 or len(u_coordinate) != 32:
        raise ValueError("X25519 takes 32-byte scalars and points")
    clamped = bytearray(scalar)
    clamped[0] &= 248
    clamped[31] = (clamped[31] & 127) | 64
    k = int.from_bytes(clamped, "little")
    x1 = int.from_bytes(u_coordinate, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3 = 1, 0, x1, 1
    swap = 0
    for t in range(254, -1, -1):  # the Montgomery ladder, RFC 7748 section 5
        bit = (k >> t) & 1
        if swap ^ bit:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = x2 + z2, x2 - z2
        aa, bb = a * a % _P, b * b % _P
        e = aa - bb
        c, d = x3 + z3, x3 - z3
        da, cb = d * a % _P, c * b % _P
        x3 = (da + cb) ** 2 % _P
        z3 = x1 * (da - cb) ** 2 % _P
        x2 = aa * bb % _P
        z2 = e * (aa + _A24 * e) % _P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, -1, _P) % _P).to_bytes(32, "little") if z2 % _P else bytes(32)


def x25519_keypair() -> tuple[bytes, bytes]:
    """A fresh private key and its public key (raw 32 bytes each)."""
    private = os.urandom(32)
    return private, x25519(private, _BASE_POINT)


def x25519_exchange(private: bytes, peer_public: bytes) -> bytes:
    """The shared secret; ``ValueError`` for a low-order peer key (an all-zero secret), as OpenSSL refuses it."""
    shared = x25519(private, peer_public)
    if not any(shared):
        raise ValueError("the peer's X25519 key is of low order")
    return shared


# --------------------------------------------------------------------------- HKDF


def hkdf_sha256(secret: bytes, *, info: bytes, length: int = 32, salt: bytes | None = None) -> bytes:
    """HKDF-SHA256 extract-and-expand."""
    prk = hmac.new(salt or bytes(32), secret, hashlib.sha256).digest()
    output, block = b"", b""
    counter = 1
    while len(output) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        output += block
        counter += 1
    return output[:length]


# --------------------------------------------------------------------------- ChaCha20-Poly1305


def _chacha20_block(key_words: tuple[int, ...], counter: int, nonce_words: tuple[int, ...]) -> bytes:
    initial = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574, *key_words, counter & _MASK32, *nonce_words]
    s = list(initial)

    def quarter(a: int, b: int, c: int, d: int) -> None:
        s[a] = (s[a] + s[b]) & _MASK32
        s[d] ^= s[a]
        s[d] = ((s[d] << 16) | (s[d] >> 16)) & _MASK32
        s[c] = (s[c] + s[d]) & _MASK32
        s[b] ^= s[c]
        s[b] = ((s[b] << 12) | (s[b] >> 20)) & _MASK32
        s[a] = (s[a] + s[b]) & _MASK32
        s[d] ^= s[a]
        s[d] = ((s[d] << 8) | (s[d] >> 24)) & _MASK32
        s[c] = (s[c] + s[d]) & _MASK32
        s[b] ^= s[c]
        s[b] = ((s[b] << 7) | (s[b] >> 25)) & _MASK32

    for _ in range(10):
        quarter(0, 4, 8, 12)
        quarter(1, 5, 9, 13)
        quarter(2, 6, 10, 14)
        quarter(3, 7, 11, 15)
        quarter(0, 5, 10, 15)
        quarter(1, 6, 11, 12)
        quarter(2, 7, 8, 13)
        quarter(3, 4, 9, 14)
    return struct.pack("<16I", *((x + y) & _MASK32 for x, y in zip(s, initial, strict=True)))


def chacha20(key: bytes, counter: int, nonce: bytes, data: bytes) -> bytes:
    """ChaCha20 (RFC 8439 section 2.4): ``data`` XORed with the key stream from block ``counter``."""
    key_words = struct.unpack("<8I", key)
    nonce_words = struct.unpack("<3I", nonce)
    out = bytearray()
    for index in range(0, len(data), 64):
        stream = _chacha20_block(key_words, counter + index // 64, nonce_words)
        chunk = data[index : index + 64]
        out += bytes(x ^ y for x, y in zip(chunk, stream, strict=False))  # the last chunk may be short
    return bytes(out)


def poly1305(key: bytes, message: bytes) -> bytes:
    """The Poly1305 one-time authenticator (RFC 8439 section 2.5)."""
    r = int.from_bytes(key[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    s = int.from_bytes(key[16:32], "little")
    p = (1 << 130) - 5
    accumulator = 0
    for index in range(0, len(message), 16):
        block = message[index : index + 16] + b"\x01"
        accumulator = (accumulator + int.from_bytes(block, "little")) * r % p
    return ((accumulator + s) & ((1 << 128) - 1)).to_bytes(16, "little")


def _pad16(data: bytes) -> bytes:
    return bytes(-len(data) % 16)


def chacha20_poly1305_encrypt(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """The AEAD of RFC 8439 section 2.8: ciphertext followed by its 16-byte tag (as ``cryptography`` returns it)."""
    if len(key) != 32 or len(nonce) != 12:
        raise ValueError("ChaCha20-Poly1305 takes a 32-byte key and a 12-byte nonce")
    one_time_key = _chacha20_block(struct.unpack("<8I", key), 0, struct.unpack("<3I", nonce))[:32]
    ciphertext = chacha20(key, 1, nonce, plaintext)
    mac_data = (
        associated_data
        + _pad16(associated_data)
        + ciphertext
        + _pad16(ciphertext)
        + struct.pack("<QQ", len(associated_data), len(ciphertext))
    )
    return ciphertext + poly1305(one_time_key, mac_data)
