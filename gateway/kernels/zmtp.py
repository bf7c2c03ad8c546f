"""ZeroMQ's wire protocol, ZMTP 3.0 with the NULL mechanism: what the gateway's sockets to kernels speak.

A kernel binds ZeroMQ sockets (shell, control and stdin ROUTERs, an iopub PUB) and the gateway
connects to them over TCP.  :class:`~gateway.kernels.zmqreader.CallbackSocket` speaks the
protocol itself on an asyncio connection, with this module's pieces:

* :data:`GREETING`, the 64 bytes each side sends first (signature, version 3.0, ``NULL``, client);
* :func:`ready`, the ``READY`` command with the socket's type and identity, the NULL handshake;
* :func:`encode`, a message's frames (each part with its flags and size);
* :class:`Decoder`, bytes as they arrive into the peer's greeting, its commands and its messages.

The specification is https://rfc.zeromq.org/spec/23/ (ZMTP 3.0); libzmq 4 speaks 3.1 with a 3.1
peer and 3.0 with a 3.0 peer, so a subscription is the 3.0 message ``\\x01`` + topic (which a
libzmq XPUB also reads from a 3.1 peer).  The gateway's kernels speak the NULL mechanism (their
messages are signed by HMAC with the kernel's key); a peer asking for another (CURVE) is refused.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

MORE, LONG, COMMAND = 0x01, 0x02, 0x04
"""A frame's flags: more parts of this message follow; an 8-byte size; a command, not a message part."""

GREETING = (b"\xff" + bytes(8) + b"\x7f"  # signature
            + b"\x03\x00"  # version 3.0
            + b"NULL".ljust(20, b"\x00")  # mechanism
            + b"\x00"  # as-server: the gateway connects
            + bytes(31))  # filler
GREETING_SIZE = len(GREETING)

SUBSCRIBE_ALL = b"\x01"
"""ZMTP 3.0's subscription message to every topic (``\\x01`` then the empty prefix)."""

PEER_TYPES = {b"DEALER": frozenset({b"ROUTER", b"DEALER", b"REP"}), b"SUB": frozenset({b"PUB", b"XPUB"})}
"""The socket types the gateway's socket types may talk to (RFC 23's table)."""


class ProtocolError(ValueError):
    """The peer broke the protocol, or refused the handshake: the connection is dropped."""


class Stage(enum.Enum):
    """Where a connection's :class:`Decoder` is."""

    GREETING = "waiting for the peer's greeting"
    HANDSHAKE = "waiting for the peer's READY"
    TRAFFIC = "reading messages"


def header(size: int, flags: int) -> bytes:
    """A frame's head: its flags and its size (one byte, or eight with ``LONG``)."""
    if size > 255:
        return bytes((flags | LONG,)) + size.to_bytes(8, "big")
    return bytes((flags, size))


def frame(body: bytes, flags: int) -> bytes:
    """One frame: its head, then its body."""
    return header(len(body), flags) + body


def ready(socket_type: bytes, identity: bytes | None) -> bytes:
    """The NULL mechanism's ``READY`` command: the socket's type, and the identity a ROUTER peer routes by."""
    properties = [(b"Socket-Type", socket_type)]
    if identity is not None:
        properties.append((b"Identity", identity))
    body = b"\x05READY" + b"".join(bytes((len(name),)) + name + len(value).to_bytes(4, "big") + value
                                   for name, value in properties)
    return frame(body, COMMAND)


def encode(parts: Sequence[bytes]) -> bytes:
    """A message's frames, ready to write: each part but the last flagged ``MORE`` (each part copied once)."""
    pieces = []
    last = len(parts) - 1
    for index, part in enumerate(parts):
        pieces.append(header(len(part), MORE if index < last else 0))
        pieces.append(part)
    return b"".join(pieces)


def properties(body: bytes) -> dict[bytes, bytes]:
    """A command's properties (after its name); :class:`ProtocolError` when they do not add up."""
    found: dict[bytes, bytes] = {}
    position = 0
    while position < len(body):
        name_end = position + 1 + body[position]
        value_end = name_end + 4 + int.from_bytes(body[name_end:name_end + 4], "big")
        if value_end > len(body):
            raise ProtocolError("a READY property runs past its command")
        found[body[position + 1:name_end]] = body[name_end + 4:value_end]
        position = value_end
    return found


class Decoder:
    """Reads one connection's bytes as they arrive (:meth:`feed`): the peer's greeting and ``READY``, then
    its messages.  Made by the connection for the socket type it is (``b"DEALER"``, ``b"SUB"``)."""

    def __init__(self, socket_type: bytes) -> None:
        self.stage = Stage.GREETING
        self._socket_type = socket_type
        self._pending = bytearray()
        """What arrived of a frame not yet whole; gathered, not re-read, until ``_needed`` bytes are in."""
        self._needed = GREETING_SIZE
        self._parts: list[bytes] = []

    def feed(self, data: bytes) -> list[list[bytes]]:
        """The messages ``data`` completes (with what came before); :class:`ProtocolError` when the peer
        broke the protocol.  ``stage`` says whether the handshake is done."""
        if self._pending:
            self._pending += data
            if len(self._pending) < self._needed:
                return []
            buffer = bytes(self._pending)
            self._pending = bytearray()
        else:
            buffer = data
        position = 0
        end = len(buffer)
        if self.stage is Stage.GREETING:
            if end < GREETING_SIZE:
                self._keep(buffer, GREETING_SIZE)
                return []
            self._greeted(buffer[:GREETING_SIZE])
            position = GREETING_SIZE
        messages: list[list[bytes]] = []
        parts = self._parts
        size_of = int.from_bytes
        needed = 2
        while end - position >= 2:
            flags = buffer[position]
            if flags & LONG:
                if end - position < 9:
                    needed = 9
                    break
                start = position + 9
                stop = start + size_of(buffer[position + 1:start], "big")
            else:
                start = position + 2
                stop = start + buffer[position + 1]
            if stop > end:
                needed = stop - position
                break
            body = buffer[start:stop]
            position = stop
            if flags & COMMAND:
                self._command(body)
            elif self.stage is not Stage.TRAFFIC:
                raise ProtocolError("a message came before the peer's READY")
            elif flags & MORE:
                parts.append(body)
            else:
                parts.append(body)
                messages.append(parts)
                parts = self._parts = []
        if position < end:
            self._keep(buffer[position:], needed)
        return messages

    def _keep(self, rest: bytes, needed: int) -> None:
        self._pending = bytearray(rest)
        self._needed = needed

    def _greeted(self, greeting: bytes) -> None:
        if greeting[0] != 0xFF or not greeting[9] & 0x01:  # libzmq's own test of the signature
            raise ProtocolError("the peer does not speak ZMTP (a bad greeting signature)")
        if greeting[10] < 3:
            raise ProtocolError(f"the peer speaks ZMTP {greeting[10]}.x, older than 3.0")
        mechanism = greeting[12:32].rstrip(b"\x00")
        if mechanism != b"NULL":
            raise ProtocolError(f"the peer asks for the {mechanism.decode('ascii', 'replace')} mechanism, not NULL")
        self.stage = Stage.HANDSHAKE

    def _command(self, body: bytes) -> None:
        name = body[1:1 + body[0]] if body else b""
        if name == b"ERROR":
            reason = body[7:7 + body[6]] if len(body) > 6 else b""
            raise ProtocolError(f"the peer refused the handshake: {reason.decode('utf-8', 'replace')}")
        if self.stage is Stage.HANDSHAKE:
            if name != b"READY":
                raise ProtocolError(f"the peer sent {name!r} where READY was due")
            peer_type = properties(body[1 + len(name):]).get(b"Socket-Type", b"")
            if peer_type not in PEER_TYPES[self._socket_type]:
                raise ProtocolError(f"a {self._socket_type.decode()} cannot talk to a "
                                    f"{peer_type.decode('ascii', 'replace') or 'nameless'} socket")
            self.stage = Stage.TRAFFIC
        # Other commands (PING and the like, of 3.1) are for peers that asked for them: none are.
