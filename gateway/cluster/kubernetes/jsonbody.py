"""Request and answer bodies as JSON bytes: ``orjson`` where it can, the standard library where it cannot.

Every answer and watch event the gateway reads is decoded here, and every body it sends encoded
here: a kernel start reads about a dozen objects (its pod several times over, through the watch),
and the standard library's codec was a tenth of the gateway's CPU per start.  Encoding, what
``orjson`` refuses (integers beyond 64 bits) is written by the standard library.  Decoding, the
one difference is that ``orjson`` reads an integer beyond 64 bits as a float: the Kubernetes API
has none (its API conventions allow only int32 and int64 integer fields).
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def encode(value: Any) -> bytes:
    """``value`` as compact JSON bytes (keys that are not strings written as strings, as ``json.dumps`` does)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode("utf-8")


def decode(data: bytes | str) -> Any:
    """The JSON value in ``data``; raises ``ValueError`` when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)
