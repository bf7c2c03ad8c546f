"""Wire-format objects as the store holds them: where each lives (:data:`Key`) and how it is copied.

Stored objects are plain JSON data (dicts, lists, strings, numbers, booleans,
``None``), so a copy needs none of ``copy.deepcopy``'s generality; the store
copies every object in and out, and this keeps large lists and busy watches
cheap.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson

T = TypeVar("T")

_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS
"""What orjson would turn into other JSON (a datetime into a string, a str subclass into a str)
raises instead, and is copied by :func:`_copy`."""

Key = tuple[str, str, str]
"""(plural, namespace or "", name): where an object lives in the store."""


def clone(value: T) -> T:
    """A deep copy of JSON data; other values are shared, as they are immutable in wire objects.

    Through ``orjson``, written and read back: about four times faster than copying an 8 KB pod
    dict by dict, and the store copies each object into every watch event.  What it cannot write
    (an integer past 64 bits, a key that is not a string, a datetime, a subclass of ``str``, ``int``,
    ``dict`` or ``list``) is copied dict by dict.  A tuple comes back as a list and a float that is
    not finite as ``null``: wire objects hold neither (the API server refuses ``NaN`` in a body,
    as Go's decoder does: ``fakes.apiserver.decoding``).
    """
    if isinstance(value, (dict, list)):
        try:
            return orjson.loads(orjson.dumps(value, option=_STRICT))  # type: ignore[no-any-return]
        except TypeError:
            return _copy(value)  # type: ignore[no-any-return]
    return value


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def json_kind(value: Any) -> str:
    """The word Go's JSON decoder uses for ``value``'s kind in ``cannot unmarshal <kind> into ...``."""
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"
