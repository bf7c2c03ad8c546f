"""Wire-format objects as the store holds them: where each lives (:data:`Key`) and how it is copied.

Stored objects are plain JSON data (dicts, lists, strings, numbers, booleans,
``None``), so a copy needs none of ``copy.deepcopy``'s generality; the store
copies every object in and out, and this keeps large lists and busy watches
cheap.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

Key = tuple[str, str, str]
"""(plural, namespace or "", name): where an object lives in the store."""


def clone(value: T) -> T:
    """A deep copy of JSON data; other values are shared, as they are immutable in wire objects."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [clone(v) for v in value]  # type: ignore[return-value]
    return value
