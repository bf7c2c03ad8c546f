"""Translation between our errors and the API server's ``Status`` objects.

The simulated API server renders errors with :func:`to_status`; the real
adapter turns a failed response back into an error with :func:`from_status`.
Both follow ``k8s.io/apimachinery/pkg/api/errors`` so that a real client reads
our fake's answers exactly as it reads a real server's.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.cluster import interface as i

_BY_REASON: dict[str, type[i.ClusterError]] = {
    cls.reason: cls
    for cls in (
        i.BadRequest, i.Unauthorized, i.Forbidden, i.NotFound, i.MethodNotAllowed, i.Conflict,
        i.AlreadyExists, i.Gone, i.UnsupportedMediaType, i.Invalid, i.TooManyRequests,
        i.ServiceUnavailable, i.Timeout,
    )
}
_BY_REASON["Gone"] = i.Gone
_BY_CODE: dict[int, type[i.ClusterError]] = {
    400: i.BadRequest, 401: i.Unauthorized, 403: i.Forbidden, 404: i.NotFound, 405: i.MethodNotAllowed,
    409: i.Conflict, 410: i.Gone, 415: i.UnsupportedMediaType, 422: i.Invalid, 429: i.TooManyRequests,
    503: i.ServiceUnavailable, 504: i.Timeout,
}


def to_status(err: i.ClusterError) -> dict[str, Any]:
    """The ``Status`` body a real API server sends for ``err``."""
    details: dict[str, Any] = {}
    if err.name:
        details["name"] = err.name
    if err.group:
        details["group"] = err.group
    if err.kind:
        details["kind"] = err.kind
    if err.causes:
        details["causes"] = [
            {k: v for k, v in (("reason", c.reason), ("message", c.message), ("field", c.field)) if v}
            for c in err.causes
        ]
    if err.retry_after_seconds is not None:
        details["retryAfterSeconds"] = err.retry_after_seconds
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": err.message,
        "reason": err.reason,
        "code": err.status,
    }
    if details:
        status["details"] = details
    return status


def from_status(code: int, body: bytes | str | dict[str, Any] | None) -> i.ClusterError:
    """The error for a failed response with HTTP ``code`` and body ``body``.

    A body that is not a ``Status`` still yields an error of the right class by
    its code, with the raw text as message.
    """
    status: dict[str, Any] = {}
    if isinstance(body, dict):
        status = body
    elif body:
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                status = parsed
        except ValueError:
            status = {"message": body.decode(errors="replace") if isinstance(body, bytes) else body}
    reason = str(status.get("reason") or "")
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code) or (i.ServerError if code >= 500 else i.ClusterError)
    details = status.get("details") or {}
    causes = [
        i.Cause(reason=str(c.get("reason", "")), message=str(c.get("message", "")), field=str(c.get("field", "")))
        for c in details.get("causes", []) or []
    ]
    err = cls(
        str(status.get("message") or f"HTTP {code}"),
        kind=details.get("kind"),
        name=details.get("name"),
        group=details.get("group", ""),
        causes=causes,
        retry_after_seconds=details.get("retryAfterSeconds"),
    )
    if cls is i.ClusterError or (cls is i.ServerError and code != 500):
        err.status = code
    return err
