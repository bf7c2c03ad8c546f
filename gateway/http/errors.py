"""JSON error bodies for every failure, and the base of the gateway's REST handlers.

Every error the gateway answers is ``{"reason": ..., "message": ...}`` with
its status, as Enterprise Gateway answers: any
:class:`~gateway.errors.GatewayError` (the kernel service's and the provisioner's
errors, with their own status, reason and message), tornado's
``HTTPError`` (400 for a bad body, 401, 403, 404 for an unknown path, 405 for
an unsupported method), and anything unexpected as a 500 whose message does
not leak internals.  Never tornado's HTML error page: :class:`JsonErrors` is
mixed into every handler, the websocket's included, and the application's
default handler answers unknown paths.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from tornado import web

from gateway.errors import GatewayError, phrase
from gateway.observability.logs import tag_task

from .auth import check_token
from .context import HttpContext

log = logging.getLogger("gateway.http")


def error_body(status: int, exc: BaseException | None) -> tuple[int, dict[str, str]]:
    """The status and JSON body answering ``exc`` (a ``GatewayError`` keeps its own status)."""
    if isinstance(exc, GatewayError):
        return exc.status, {"reason": exc.reason, "message": exc.message}
    reason = phrase(status)
    if isinstance(exc, web.HTTPError):
        message = exc.log_message % exc.args if exc.log_message and exc.args else (exc.log_message or reason)
        return status, {"reason": exc.reason or reason, "message": message}
    if status >= 500:
        return status, {"reason": reason, "message": "The gateway failed to handle the request; see its log."}
    return status, {"reason": reason, "message": reason}


_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&#]*", re.IGNORECASE)


def hide_tokens(uri: str) -> str:
    """``uri`` with the value of every ``token`` query parameter replaced: no token goes into a log line."""
    return _TOKEN_IN_QUERY.sub(r"\1[hidden]", uri)


class JsonErrors(web.RequestHandler):
    """Mixin: JSON errors, token check in ``prepare``, quiet logs for expected refusals."""

    context: HttpContext
    public = False
    """Handlers open without the token (the probes)."""

    def initialize(self, context: HttpContext) -> None:  # type: ignore[override]
        self.context = context

    def prepare(self) -> None:
        tag_task(self.path_kwargs.get("kernel_id"))  # this request's log lines name the kernel it is about
        if not self.public:
            check_token(self, self.context.settings.auth_token)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        status, body = error_body(status_code, exc_info[1] if exc_info else None)
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def _request_summary(self) -> str:
        """What tornado's own log lines say of the request (its refusals among them), with query tokens hidden."""
        return f"{self.request.method} {hide_tokens(self.request.uri or '')} ({self.request.remote_ip})"

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, GatewayError):
            status, body = error_body(value.status, value)
            level = logging.ERROR if status >= 500 else logging.INFO
            log.log(level, "%s %s: %d %s", self.request.method, self.request.path, status, body["message"])
        else:
            super().log_exception(typ, value, tb)


class ApiHandler(JsonErrors):
    """Base of the REST handlers: JSON bodies in and out."""

    def get_json_body(self) -> Any:
        """The request's JSON body (``None`` when empty); a 400 when it is not JSON."""
        if not self.request.body:
            return None
        try:
            return json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPError(400, "The request body is not valid JSON.") from None

    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value))

    def url(self, *parts: str) -> str:
        """A path under the gateway's base URL (for ``Location`` headers)."""
        base = self.context.settings.base_url.rstrip("/")
        return base + "/" + "/".join(parts)


class NotFoundHandler(ApiHandler):
    """Every path the gateway does not serve: 404 JSON for any method (after the token check)."""

    def prepare(self) -> None:
        super().prepare()
        raise web.HTTPError(404, f"No such resource: {self.request.path[:200]}")
