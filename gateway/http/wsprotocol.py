"""Kernel messages on a websocket: the two framings clients speak, and their translation to ZMQ frames.

Jupyter clients talk to a kernel over ``/api/kernels/{id}/channels`` in one
of two ways (Jupyter Server ``services/kernels/connection/base.py`` defines
both; this module is our own implementation of the same wire formats):

* **legacy** (no subprotocol; what Jupyter Server's gateway client speaks):
  a text frame holding the message as JSON with a ``channel`` field
  (``shell`` when missing), or, for a message with buffers, a binary frame::

      uint32 n   uint32 offset[0] ... offset[n-1]   JSON   buffer1 ... buffer(n-1)

  big-endian, ``n`` counting the JSON part and the buffers, offsets from the
  start of the frame;

* **v1** (subprotocol ``v1.kernel.websocket.jupyter.org``): always binary::

      uint64 k   uint64 offset[0] ... offset[k-1]   channel   header parent metadata content buffers...

  little-endian, ``offset[0]`` where the channel name starts, each next one
  where the next part starts, the last one the end; the parts are the ZMQ
  frames as the kernel packs them, without signature: the gateway signs
  what it forwards to the kernel.

The ZMQ side of a message (its parts, its signature) is
:mod:`gateway.kernels.frames`'.  Codecs never touch a socket: the bridge
(:mod:`gateway.http.bridge`) and its links call them for each message.
"""

from __future__ import annotations

import json
import re
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from gateway.kernels.frames import FrameError

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
CLIENT_CHANNELS = ("shell", "control", "stdin")
"""The channels a client may send on: iopub only broadcasts from the kernel."""
MAX_PARTS = 4096
"""At most this many parts (JSON + buffers) in one websocket frame; more is refused as malformed."""

@dataclass(frozen=True)
class Incoming:
    """A client's message ready for ZMQ: its channel, its unsigned parts, and its type (for activity)."""

    channel: str
    parts: list[bytes]  # header, parent_header, metadata, content, buffers...
    msg_type: str


# ---------------------------------------------------------------------- parts


_LONG_DIGITS = re.compile(rb"\d{19}")
"""A number that may not fit 64 bits, which ``orjson`` would read as a float: the standard library reads such a part."""


def _parsed(part: bytes, what: str) -> tuple[Any, bool]:
    """The JSON value of ``part``, and whether ``orjson`` read it (``FrameError`` when it is not JSON).

    ``orjson`` reads most parts several times faster.  What it refuses (``NaN`` and infinities, a lone
    surrogate, other encodings than UTF-8) and numbers that may not fit 64 bits go to the standard
    library's parser; a value ``orjson`` read holds nothing :func:`_dump_read` could not write back as
    :func:`_dump` would.
    """
    if _LONG_DIGITS.search(part) is None:
        try:
            return orjson.loads(part), True
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(part), False
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise FrameError(f"the {what} of a message is not JSON") from None


def _loads(part: bytes, what: str) -> Any:
    return _parsed(part, what)[0]


def _msg_type(header: Any) -> str:
    if not isinstance(header, dict) or not isinstance(header.get("msg_type"), str) or not header["msg_type"]:
        raise FrameError("a message header without a msg_type")
    return header["msg_type"]


def _channel(value: Any) -> str:
    channel = "shell" if value is None else value
    if channel not in CLIENT_CHANNELS:
        raise FrameError(f"no channel {str(value)[:20]!r}")
    return channel


def _dump_read(value: Any) -> bytes:
    """A value :func:`_parsed` read with ``orjson``, as JSON: by ``orjson`` (compact), else as :func:`_dump` does."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _dump(value)


def _dump(value: Any) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8", errors="surrogateescape")
    except (ValueError, TypeError, RecursionError):
        raise FrameError("a message part that cannot be JSON (NaN, or nested too deep)") from None


# ---------------------------------------------------------------------- legacy framing


def pack_legacy_buffers(json_part: bytes, buffers: Sequence[bytes]) -> bytes:
    """A legacy binary frame: count, big-endian uint32 offsets, the JSON, then the buffers."""
    chunks = [json_part, *buffers]
    offsets = [4 * (len(chunks) + 1)]
    for chunk in chunks[:-1]:
        offsets.append(offsets[-1] + len(chunk))
    return struct.pack(f"!{len(chunks) + 1}I", len(chunks), *offsets) + b"".join(chunks)


def unpack_legacy_buffers(frame: bytes) -> tuple[bytes, list[bytes]]:
    """``(JSON, buffers)`` of a legacy binary frame (``FrameError`` when the offsets do not fit)."""
    if len(frame) < 8:
        raise FrameError("a binary frame too short for its header")
    (count,) = struct.unpack_from("!I", frame, 0)
    if not 1 <= count <= MAX_PARTS or len(frame) < 4 * (count + 1):
        raise FrameError("a binary frame with a bad part count")
    offsets = [*struct.unpack_from(f"!{count}I", frame, 4), len(frame)]
    if offsets[0] != 4 * (count + 1) or any(a > b for a, b in zip(offsets[:-1], offsets[1:], strict=True)):
        raise FrameError("a binary frame with bad offsets")
    chunks = [frame[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    return chunks[0], chunks[1:]


class LegacyCodec:
    """The legacy protocol: JSON text frames with ``channel``, binary frames when there are buffers."""

    subprotocol: str | None = None

    def decode(self, message: str | bytes) -> Incoming:
        """A client's frame as the parts to sign and send (``FrameError`` when malformed)."""
        buffers: list[bytes] = []
        if isinstance(message, bytes):
            json_part, buffers = unpack_legacy_buffers(message)
            msg, read_fast = _parsed(json_part, "JSON part")
        else:
            msg, read_fast = _parsed(message.encode("utf-8"), "frame")
        if not isinstance(msg, dict):
            raise FrameError("a message that is not a JSON object")
        channel = _channel(msg.get("channel"))
        header = msg.get("header")
        msg_type = _msg_type(header)
        dump = _dump_read if read_fast else _dump
        parts = [dump(header), dump(msg.get("parent_header") or {}), dump(msg.get("metadata") or {}),
                 dump(msg.get("content") if msg.get("content") is not None else {})]
        return Incoming(channel, parts + buffers, msg_type)

    def encode(self, channel: str, parts: Sequence[bytes]) -> tuple[str | bytes, bool]:
        """A kernel message (its parts after the signature) as ``(frame, is_binary)`` for the client.

        The JSON is assembled from the kernel's packed parts as they are (the
        kernel's session packs them as JSON), with ``msg_id``/``msg_type``
        copied from the header as Jupyter Server's ``Session.deserialize`` adds them.
        """
        header, read_fast = _parsed(parts[0], "header")
        msg_id = header.get("msg_id", "") if isinstance(header, dict) else ""
        msg_type = header.get("msg_type", "") if isinstance(header, dict) else ""
        dump = _dump_read if read_fast else _dump
        head = (b'{"header":' + parts[0] + b',"msg_id":' + dump(msg_id) + b',"msg_type":' + dump(msg_type)
                + b',"parent_header":' + parts[1] + b',"metadata":' + parts[2] + b',"content":' + parts[3]
                + b',"channel":' + _dump_read(channel))
        buffers = parts[4:]
        if buffers:
            return pack_legacy_buffers(head + b"}", buffers), True
        return (head + b',"buffers":[]}').decode("utf-8"), False


# ---------------------------------------------------------------------- v1 framing


def pack_v1(channel: str, parts: Sequence[bytes]) -> bytes:
    """A v1 frame: count and little-endian uint64 offsets, the channel name, then the parts."""
    chunks = [channel.encode("utf-8"), *parts]
    count = len(chunks) + 1
    offsets = [8 * (count + 1)]
    for chunk in chunks:
        offsets.append(offsets[-1] + len(chunk))
    return struct.pack(f"<{count + 1}Q", count, *offsets) + b"".join(chunks)


def unpack_v1(frame: bytes) -> tuple[str, list[bytes]]:
    """``(channel, parts)`` of a v1 frame (``FrameError`` when the offsets do not fit)."""
    if len(frame) < 8:
        raise FrameError("a v1 frame too short for its header")
    (count,) = struct.unpack_from("<Q", frame, 0)
    if not 2 <= count <= MAX_PARTS + 2 or len(frame) < 8 * (count + 1):
        raise FrameError("a v1 frame with a bad offset count")
    offsets = list(struct.unpack_from(f"<{count}Q", frame, 8))
    if offsets[0] != 8 * (count + 1) or offsets[-1] > len(frame) or any(a > b for a, b in zip(offsets[:-1], offsets[1:], strict=True)):
        raise FrameError("a v1 frame with bad offsets")
    chunks = [frame[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    try:
        channel = chunks[0].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("a v1 frame whose channel is not text") from None
    return channel, chunks[1:]


class V1Codec:
    """The ``v1.kernel.websocket.jupyter.org`` protocol: ZMQ parts relayed as they are."""

    subprotocol: str | None = V1_PROTOCOL

    def decode(self, message: str | bytes) -> Incoming:
        if not isinstance(message, bytes):
            raise FrameError("a text frame on the v1 protocol")
        channel, parts = unpack_v1(message)
        if len(parts) < 4:
            raise FrameError("a v1 message with fewer than four parts")
        return Incoming(_channel(channel), parts, _msg_type(_loads(parts[0], "header")))

    def encode(self, channel: str, parts: Sequence[bytes]) -> tuple[str | bytes, bool]:
        return pack_v1(channel, parts), True


Codec = LegacyCodec | V1Codec


def codec_for(subprotocol: str | None) -> Codec:
    """The codec of the negotiated subprotocol (``None``: legacy)."""
    return V1Codec() if subprotocol == V1_PROTOCOL else LegacyCodec()


def status_parts(execution_state: str, session_id: str, *, username: str = "kernelgate") -> list[bytes]:
    """An iopub ``status`` message the gateway itself publishes to a client (restarting, starting, dead)."""
    header = {"msg_id": str(uuid.uuid4()), "msg_type": "status", "username": username, "session": session_id,
              "date": datetime.now(timezone.utc).isoformat(), "version": "5.3"}
    return [_dump(header), b"{}", b"{}", _dump({"execution_state": execution_state})]
