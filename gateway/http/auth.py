"""Token authentication (``EG_AUTH_TOKEN``), checked before every handler but the probes.

A client presents the token as ``Authorization: token <T>`` (``Bearer`` is
accepted too) or as the ``token`` query argument; the websocket upgrade is a
GET and is checked the same way.  Comparison is constant-time.
"""

from __future__ import annotations

import hmac

from tornado import web


def presented_token(handler: web.RequestHandler) -> str | None:
    """The token a request carries in its ``Authorization`` header or ``?token=``, if any."""
    header = handler.request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return handler.get_query_argument("token", None)


def check_token(handler: web.RequestHandler, expected: str) -> None:
    """Raise a 401 unless ``expected`` is empty or the request presents it."""
    if not expected:
        return
    token = presented_token(handler)
    if token is None or not hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8")):
        raise web.HTTPError(401, "Authentication is required: send the gateway's token as "
                                 "'Authorization: token <token>' or '?token=<token>'.")
