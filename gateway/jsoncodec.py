"""JSON as bytes: ``orjson`` where it can, the standard library where it cannot.

The cluster adapter decodes every answer and watch event here and encodes every body it sends,
and kernel records are encoded here (sorted keys): a kernel start reads about a dozen objects
(its pod several times over, through the watch) and writes its record twice, and the standard
library's codec was a tenth of the gateway's CPU per start.  Encoding, what ``orjson`` refuses
(integers beyond 64 bits, a string holding an unpaired surrogate) is written by the standard
library, which escapes it.  Decoding, the one difference is that ``orjson`` reads an integer
beyond 64 bits as a float: the Kubernetes API has none (its API conventions allow only int32 and
int64 integer fields).  The module imports nothing of the gateway, so every layer may use it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def encode(value: Any, *, sort_keys: bool = False) -> bytes:
    """``value`` as compact JSON bytes (keys that are not strings written as strings, as ``json.dumps`` does);
    with ``sort_keys``, every object's keys in order (a kernel record: the same record, the same bytes)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | (orjson.OPT_SORT_KEYS if sort_keys else 0))
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys).encode("utf-8")


def decode(data: bytes | str) -> Any:
    """The JSON value in ``data``; raises ``ValueError`` when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)
