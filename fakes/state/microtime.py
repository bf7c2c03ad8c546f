"""``metav1.MicroTime`` fields as the API server decodes them: RFC 3339 with exactly six fractional digits.

A Lease's ``spec.acquireTime`` and ``spec.renewTime`` and an Event's ``eventTime`` are read with Go's
``time.Parse`` and the layout ``2006-01-02T15:04:05.000000Z07:00`` (``k8s.io/apimachinery``
``pkg/apis/meta/v1/micro_time.go``): a value with no fraction or another number of digits is refused
with the parser's words, and what is stored is the instant in UTC.  Called through
:func:`fakes.state.admission.read_typed` on every write, before the object is looked at.
"""

from __future__ import annotations

import calendar
import time
from typing import Any

from fakes.state.datafields import DecodeError
from fakes.state.objects import json_kind
from gateway.cluster.resources import ResourceType

LAYOUT = "2006-01-02T15:04:05.000000Z07:00"
_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "leases": (("spec", "acquireTime"), ("spec", "renewTime")),
    "events": (("eventTime",),),
}


def decode_micro_times(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Store ``obj``'s MicroTime fields as their instant in UTC; :class:`DecodeError` with Go's text when one
    does not parse."""
    for path in _FIELDS.get(rt.plural, ()):
        parent: Any = obj
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or parent.get(path[-1]) is None:
            continue
        value = parent[path[-1]]
        if not isinstance(value, str):
            raise DecodeError(f"json: cannot unmarshal {json_kind(value)} into Go value of type string")
        parent[path[-1]] = canonical(value)


def canonical(value: str) -> str:
    """``value`` parsed as Go's ``time.Parse(LAYOUT, value)`` does, written back in UTC with six digits."""
    fields, offset = _parse(value)
    year, month, day, hour, minute, second, micro = fields
    epoch = calendar.timegm((year, month, day, hour, minute, second)) - offset
    y, mo, d, h, mi, s = _utc(epoch)
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{micro:06d}Z"


def _utc(epoch: int) -> tuple[int, int, int, int, int, int]:
    t = time.gmtime(epoch)
    return t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cannot(value: str, rest: str, element: str) -> DecodeError:
    return DecodeError(f"parsing time {_quote(value)} as {_quote(LAYOUT)}: cannot parse {_quote(rest)} as "
                       f"{_quote(element)}")


def _digits(rest: str, count: int, *, fixed: bool) -> tuple[int, str] | None:
    """Go's ``getnum`` (two digits, or one when not ``fixed``) and the year's four."""
    if count == 4:
        head = rest[:4]
        return (int(head), rest[4:]) if len(head) == 4 and head.isascii() and head.isdigit() else None
    if not rest[:1].isdigit() or not rest[:1].isascii():
        return None
    if not rest[1:2].isdigit() or not rest[1:2].isascii():
        return None if fixed else (int(rest[0]), rest[1:])
    return int(rest[:2]), rest[2:]


def _parse(value: str) -> tuple[tuple[int, int, int, int, int, int, int], int]:
    """The date and time fields and the offset in seconds, element by element as ``time.Parse`` reads the layout."""
    rest = value
    numbers = []
    for element, literal_after, fixed, limits in (("2006", "-", True, None), ("01", "-", True, ("month", 1, 12)),
                                                  ("02", "T", True, None), ("15", ":", False, ("hour", 0, 23)),
                                                  ("04", ":", True, ("minute", 0, 59)),
                                                  ("05", "", True, ("second", 0, 59))):
        got = _digits(rest, 4 if element == "2006" else 2, fixed=fixed)
        if got is None:
            raise _cannot(value, rest, element)
        number, rest = got
        if limits is not None and not limits[1] <= number <= limits[2]:  # checked as each element is read
            raise DecodeError(f"parsing time {_quote(value)}: {limits[0]} out of range")
        numbers.append(number)
        if literal_after:
            if not rest.startswith(literal_after):
                raise _cannot(value, rest, literal_after)
            rest = rest[1:]
    year, month, day, hour, minute, second = numbers
    fraction = rest[:7]
    if len(fraction) < 7 or fraction[0] not in ".," or not (fraction[1:].isascii() and fraction[1:].isdigit()):
        raise _cannot(value, rest, ".000000")
    micro, rest = int(fraction[1:]), rest[7:]
    offset = 0
    if rest.startswith("Z"):
        rest = rest[1:]
    elif len(rest) >= 6 and rest[0] in "+-" and rest[3] == ":" and rest[1:3].isdigit() and rest[4:6].isdigit():
        offset = (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * (1 if rest[0] == "+" else -1)
        rest = rest[6:]
    else:
        raise _cannot(value, rest, "Z07:00")
    if rest:
        raise DecodeError(f"parsing time {_quote(value)}: extra text: {_quote(rest)}")
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise DecodeError(f"parsing time {_quote(value)}: day out of range")
    return (year, month, day, hour, minute, second, micro), offset
