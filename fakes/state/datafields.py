"""A Secret's ``data`` and a ConfigMap's ``data`` and ``binaryData`` as the API server decodes them.

A real API server decodes a request body into its typed object before anything else: a value
of these maps that is not a string is refused, a ``[]byte`` value (``Secret.data``,
``ConfigMap.binaryData``) goes through Go's ``base64.StdEncoding``, and what is stored (and
answered) is the canonical encoding of the bytes it read.  Called by
:class:`fakes.state.store.Store` on every write before it looks at the object, and by the
validation of these kinds for their size.

Sources followed: Go's ``encoding/base64`` (``Encoding.Decode`` and ``decodeQuantum``: line
breaks are skipped, padding is required, the error names the offset of the first byte that
cannot be read) and ``encoding/json`` (a ``[]byte`` is decoded from a base64 string, ``null``
is the zero value, the first error met is the one returned), which ``sigs.k8s.io/json`` forks.
"""

from __future__ import annotations

import base64
import string
from typing import Any

from fakes.state.objects import json_kind
from gateway.cluster.resources import ResourceType

_ALPHABET = frozenset((string.ascii_letters + string.digits + "+/").encode("ascii"))
_LINE_BREAKS = frozenset(b"\r\n")
_PAD = ord("=")

_MAPS: dict[str, tuple[tuple[str, str], ...]] = {
    # plural: ((field, Go element type), ...) in the order the Go decoder meets them in a struct
    "secrets": (("data", "[]uint8"), ("stringData", "string")),
    "configmaps": (("data", "string"), ("binaryData", "[]uint8")),
}


class DecodeError(ValueError):
    """The body cannot be read as the kind's typed object; ``str()`` is the Go decoder's text."""


def decode_error_offset(text: bytes) -> int | None:
    """Where Go's ``base64.StdEncoding.Decode`` stops reading ``text``, or ``None`` when it reads it whole.

    Quantum by quantum, as ``decodeQuantum`` does: ``\\r`` and ``\\n`` are skipped anywhere, a quantum
    cut short by the end needs its padding, and nothing but line breaks may follow the padding.
    """
    si, n = 0, len(text)
    while si < n:
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return None
                return si - j  # a quantum cut short, without the padding StdEncoding requires
            byte = text[si]
            si += 1
            if byte in _ALPHABET:
                j += 1
                continue
            if byte in _LINE_BREAKS:
                continue
            if byte != _PAD or j < 2:
                return si - 1
            if j == 2:  # "==" expected: the first consumed, the second must come (line breaks between)
                while si < n and text[si] in _LINE_BREAKS:
                    si += 1
                if si == n:
                    return n
                if text[si] != _PAD:
                    return si - 1
                si += 1
            while si < n and text[si] in _LINE_BREAKS:
                si += 1
            return si if si < n else None  # trailing garbage after the padding
    return None


def decode_data_maps(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Check ``obj``'s data maps as the typed decoder would, and store its ``[]byte`` values canonically.

    Raises :class:`DecodeError` with the decoder's message (``json: cannot unmarshal number into Go
    struct field Secret.data of type []uint8``, ``illegal base64 data at input byte 3``); a ``null``
    value becomes ``""``, a base64 value with line breaks its encoding without them.
    """
    for field, element in _MAPS.get(rt.plural, ()):
        values = obj.get(field)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise DecodeError(f"json: cannot unmarshal {json_kind(values)} into Go struct field {rt.kind}.{field} "
                              f"of type map[string]{element}")
        for key, value in values.items():
            if value is None:
                values[key] = ""
                continue
            if not isinstance(value, str):
                raise DecodeError(f"json: cannot unmarshal {json_kind(value)} into Go struct field "
                                  f"{rt.kind}.{field} of type {element}")
            if element == "[]uint8":
                raw = value.encode("utf-8", errors="replace")
                offset = decode_error_offset(raw)
                if offset is not None:
                    raise DecodeError(f"illegal base64 data at input byte {offset}")
                values[key] = base64.b64encode(base64.b64decode(bytes(b for b in raw if b not in _LINE_BREAKS)))\
                    .decode("ascii")


def data_size(rt: ResourceType, obj: dict[str, Any]) -> int:
    """The bytes of a decoded Secret's or ConfigMap's data, which validation holds to 1 MiB."""
    size = 0
    for field, element in _MAPS.get(rt.plural, ()):
        if field == "stringData":
            continue  # folded into data before validation
        for value in (obj.get(field) or {}).values():
            if isinstance(value, str):
                size += len(base64.b64decode(value)) if element == "[]uint8" else len(value.encode("utf-8"))
    return size

