"""Reading request bodies kubectl sends as Kubernetes protobuf (``application/vnd.kubernetes.protobuf``).

Called by :mod:`fakes.apiserver.decoding` for create/update bodies in that media type.
The body is the real server's envelope (``k8s.io/apimachinery/pkg/runtime/serializer/protobuf``):
the magic bytes ``k8s\\x00`` and a ``runtime.Unknown`` message whose ``typeMeta``
names the kind and whose ``raw`` is the object.  The object is turned into the
JSON-shaped dict the JSON decoder would have produced, using the field table
of :mod:`fakes.apiserver.protobuf_schema`.

Kubernetes' protobuf marshaller writes non-pointer fields even when they hold
their zero value, while JSON leaves them out (``omitempty``); zero scalars are
therefore dropped, except for the pointer fields in :data:`_EXPLICIT`, where
``false`` is a choice.  Kinds and fields outside the table are refused with
415, never dropped silently.
"""

from __future__ import annotations

import base64
import datetime
import json
import struct
from collections.abc import Iterator
from typing import Any

from fakes.apiserver.protobuf_schema import JSON_NAMES, MESSAGES, ROOT_KINDS, STRING_LISTS
from gateway.cluster.interface import BadRequest, UnsupportedMediaType

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# Pointer fields (`*bool` in the Go types) whose false must survive.
_EXPLICIT = {
    ("ServiceAccount", "automountServiceAccountToken"), ("ConfigMap", "immutable"), ("Secret", "immutable"),
    ("ServiceSpec", "allocateLoadBalancerNodePorts"),
}
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise BadRequest("protobuf: unexpected end of varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise BadRequest("protobuf: varint overflow")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """``(field number, wire type, raw value)`` for each field of one encoded message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _BYTES:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == _FIXED64:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == _FIXED32:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise BadRequest(f"protobuf: unsupported wire type {wire}")
        if pos > len(buf):
            raise BadRequest("protobuf: unexpected end of message")
        yield number, wire, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _time(buf: bytes, micro: bool) -> str | None:
    fields = {n: v for n, _, v in _fields(buf)}
    seconds, nanos = _signed(fields.get(1, 0)), fields.get(2, 0)
    if seconds == 0 and nanos == 0:
        return None  # meta/v1 Time encodes the zero time as an empty message
    when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    if micro:
        return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _value(type_name: str, wire: int, raw: Any) -> Any:
    if type_name == "string":
        return raw.decode("utf-8", errors="replace")
    if type_name == "bytes":
        return base64.b64encode(raw).decode()
    if type_name == "bool":
        return bool(raw)
    if type_name in ("int32", "int64"):
        return _signed(raw)
    if type_name == "double":
        return struct.unpack("<d", raw)[0]
    if wire != _BYTES:
        raise BadRequest(f"protobuf: {type_name} must be length-delimited")
    if type_name in ("Time", "MicroTime"):
        return _time(raw, type_name == "MicroTime")
    if type_name == "Quantity":
        return next((v.decode() for n, _, v in _fields(raw) if n == 1), "")
    if type_name == "IntOrString":
        fields = {n: v for n, _, v in _fields(raw)}
        return fields.get(3, b"").decode() if fields.get(1, 0) == 1 else _signed(fields.get(2, 0))
    if type_name == "FieldsV1":
        return json.loads(next((v for n, _, v in _fields(raw) if n == 1), b"{}"))
    if type_name in STRING_LISTS:
        return [v.decode() for n, _, v in _fields(raw) if n == 1]
    return _message(raw, type_name)


def _is_zero(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, bool | int | float) and not value)


def _message(buf: bytes, name: str) -> dict[str, Any]:
    schema = MESSAGES.get(name)
    if schema is None:
        raise UnsupportedMediaType(f"protobuf message {name} is not understood by this server; send JSON instead")
    out: dict[str, Any] = {}
    for number, wire, raw in _fields(buf):
        if number not in schema:
            raise UnsupportedMediaType(
                f"protobuf field {number} of {name} is not understood by this server; send JSON instead"
            )
        field, type_name = schema[number]
        field = JSON_NAMES.get((name, field), field)
        if type_name.startswith("map:"):
            entry = {n: v for n, _, v in _fields(raw)}
            value_type = type_name[4:]
            key = entry.get(1, b"").decode()
            value_wire = _VARINT if value_type in ("bool", "int32", "int64") else _BYTES
            out.setdefault(field, {})[key] = _value(value_type, value_wire, entry.get(2, b"" if value_wire else 0))
        elif type_name.startswith("[]"):
            element = type_name[2:]
            if wire == _BYTES and element in ("int32", "int64", "bool"):  # packed scalars
                pos = 0
                while pos < len(raw):
                    item, pos = _varint(raw, pos)
                    out.setdefault(field, []).append(_value(element, _VARINT, item))
            else:
                out.setdefault(field, []).append(_value(element, wire, raw))
        else:
            value = _value(type_name, wire, raw)
            if _is_zero(value) and (name, field) not in _EXPLICIT:
                continue
            out[field] = value
    return out


def decode(body: bytes) -> dict[str, Any]:
    """The object in a protobuf request body, as the dict its JSON form decodes to."""
    if not body.startswith(MAGIC):
        raise BadRequest("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]")
    envelope = {n: v for n, _, v in _fields(body[len(MAGIC):])}
    type_meta = {n: v.decode() for n, _, v in _fields(envelope.get(1, b""))}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    if envelope.get(3):
        raise UnsupportedMediaType(f"protobuf content encoding {envelope[3].decode()!r} is not supported")
    if kind not in ROOT_KINDS:
        raise UnsupportedMediaType(
            f"protobuf bodies of kind {kind or '(none)'} are not understood by this server; send JSON instead "
            "(for example kubectl create -f)"
        )
    obj = _message(envelope.get(2, b""), kind)
    return {"apiVersion": api_version, "kind": kind, **obj}
