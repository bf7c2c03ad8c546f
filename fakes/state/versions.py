"""Reading a client's resourceVersion as the API server's storage does: a decimal uint64, or a 500.

The store calls :func:`watch_version` for a watch's ``resourceVersion`` and
:func:`object_version` for the ``metadata.resourceVersion`` of an object a PUT
or PATCH would store.  A version that is not a number is not a client error on
a real server: storage fails to parse it and the API server answers 500 with
Go's parser text, which these functions reproduce.
"""

from __future__ import annotations

import re

from gateway.cluster.interface import ServerError

_DIGITS = re.compile(r"[0-9]+")
_UINT64_MAX = 2**64 - 1


def _parse_uint(text: str) -> tuple[int, str | None]:
    """``strconv.ParseUint(text, 10, 64)``: the value, or ``0`` and the error text Go gives."""
    if not _DIGITS.fullmatch(text):
        return 0, f'strconv.ParseUint: parsing "{text}": invalid syntax'
    value = int(text)
    if value > _UINT64_MAX:
        return 0, f'strconv.ParseUint: parsing "{text}": value out of range'
    return value, None


def watch_version(text: str | None) -> int | None:
    """The version a watch starts from; ``None`` for none (absent, ``""`` or ``"0"``).

    As ``k8s.io/apiserver`` ``pkg/storage/api_object_versioner.go`` ``ParseResourceVersion`` (called by
    ``cacher.go`` ``Watch``): a malformed version is a ``storage.NewInvalidError`` on field
    ``resourceVersion``, which the watch handler answers as a 500 without reason.
    """
    if text in (None, "", "0"):
        return None
    assert text is not None
    value, error = _parse_uint(text)
    if error is not None:
        raise ServerError(f'resourceVersion: Invalid value: "{text}": {error}')
    return value


def object_version(text: object) -> None:
    """Check the ``metadata.resourceVersion`` of an object about to replace the stored one.

    As ``k8s.io/apiserver`` ``pkg/registry/generic/registry/store.go`` ``Update`` does in its
    ``GuaranteedUpdate`` callback, through ``APIObjectVersioner.ObjectResourceVersion``: the bare parser
    error, which the handler answers as a 500 without reason.  Called after the stored object is found
    (or, for a kind that creates on update, found missing) and before versions are compared.
    """
    if isinstance(text, str) and text:
        _value, error = _parse_uint(text)
        if error is not None:
            raise ServerError(error)
