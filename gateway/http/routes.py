"""The gateway's URL map: :func:`make_application` is called by ``gateway.app``."""

from __future__ import annotations

import logging
from typing import Any

from tornado import web

from .api import VersionHandler
from .context import HttpContext
from .errors import NotFoundHandler, hide_tokens
from .health import LivenessHandler, ReadinessHandler
from .kernels import KernelActionHandler, KernelHandler, KernelsHandler
from .kernelspecs import KernelSpecHandler, KernelSpecResourceHandler, KernelSpecsHandler
from .metrics import MetricsHandler, observe_request, route_templates
from .sessions import SessionHandler, SessionsHandler
from .websocket import KernelChannelsHandler

KERNEL = r"(?P<kernel_id>[^/]+)"

access_log = logging.getLogger("tornado.access")


def routes(base_url: str) -> list[tuple[str, type[web.RequestHandler]]]:
    """``(path pattern, handler)`` under ``base_url`` (``EG_BASE_URL``)."""
    base = "/" + base_url.strip("/") if base_url.strip("/") else ""
    table: list[tuple[str, type[web.RequestHandler]]] = [
        (r"/api/?", VersionHandler),
        (r"/api/kernelspecs/?", KernelSpecsHandler),
        (r"/api/kernelspecs/(?P<name>[^/]+)/?", KernelSpecHandler),
        (r"/kernelspecs/(?P<name>[^/]+)/(?P<resource>.+)", KernelSpecResourceHandler),
        (r"/api/kernels/?", KernelsHandler),
        (rf"/api/kernels/{KERNEL}/?", KernelHandler),
        (rf"/api/kernels/{KERNEL}/(?P<action>restart|interrupt)/?", KernelActionHandler),
        (rf"/api/kernels/{KERNEL}/channels", KernelChannelsHandler),
        (r"/api/sessions/?", SessionsHandler),
        (r"/api/sessions/(?P<session_id>[^/]+)/?", SessionHandler),
        (r"/healthz", LivenessHandler),
        (r"/readyz", ReadinessHandler),
        (r"/metrics", MetricsHandler),
    ]
    return [(base + pattern, handler) for pattern, handler in table]


ROUTE_TEMPLATES = route_templates(routes("/"))
"""Each handler's route, as the metrics label requests (``/api/kernels/{kernel_id}``)."""


def log_request(handler: web.RequestHandler) -> None:
    """One access-log line per request, as tornado writes it, but with any ``?token=`` value hidden; and the
    request's latency in the gateway's metrics.

    Clients (the websocket above all) may pass ``EG_AUTH_TOKEN`` in the query string; no token is
    written to any log, at any level.  Called by tornado when a request finishes.
    """
    observe_request(handler, ROUTE_TEMPLATES)
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if not access_log.isEnabledFor(level):
        return
    request = handler.request
    uri = hide_tokens(request.uri or "")
    access_log.log(level, "%d %s %s (%s) %.2fms", status, request.method, uri, request.remote_ip,
                   1000.0 * request.request_time())


def make_application(context: HttpContext, **settings: Any) -> web.Application:
    """The tornado application serving ``context`` (``settings`` pass on to tornado)."""
    ping = context.settings.ws_ping_interval
    handlers = [(pattern, handler, {"context": context}) for pattern, handler in routes(context.settings.base_url)]
    return web.Application(
        handlers,
        default_handler_class=NotFoundHandler,
        default_handler_args={"context": context},
        websocket_ping_interval=ping if ping > 0 else None,
        websocket_ping_timeout=ping if ping > 0 else None,
        log_function=log_request,
        **settings,
    )
