"""``GET /metrics``: the gateway's metrics in the Prometheus text format, and each request's latency for them.

``/metrics`` is protected by the token like the rest of the API (a Prometheus scrape job
sends it as ``Authorization: Bearer <EG_AUTH_TOKEN>``), unless the operator opens it with
``EG_METRICS_AUTH=false`` (for annotation-based scraping inside a trusted network: the
metrics carry counts and kernelspec names, no kernel ids, users or tokens).  What the
metrics are: :mod:`gateway.observability.metrics`.

Every request is timed as it is logged (:func:`observe_request`, called by the application's
log function), labelled with its route's template (``/api/kernels/{kernel_id}``), never with
the path a client sent, so the number of series stays bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tornado import web

from gateway.observability.metrics import CONTENT_TYPE_LATEST

from .errors import ApiHandler

UNMATCHED = "unmatched"
"""The route label of a request no route serves (404)."""

_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


class MetricsHandler(ApiHandler):
    """``GET /metrics`` (see the module docstring)."""

    @property
    def public(self) -> bool:  # type: ignore[override]  # open when the operator says so
        return not self.context.settings.metrics_auth

    def get(self) -> None:
        metrics = self.context.metrics
        if metrics is None:
            raise web.HTTPError(404, "This gateway keeps no metrics.")
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(metrics.exposition())


def route_templates(table: Iterable[tuple[str, type[web.RequestHandler]]]) -> dict[type[web.RequestHandler], str]:
    """Each handler's route as a label: its pattern with named groups as ``{name}`` and no optional slash."""
    templates: dict[type[web.RequestHandler], str] = {}
    for pattern, handler in table:
        template = _GROUP.sub(lambda m: "{" + m.group(1) + "}", pattern)
        templates.setdefault(handler, template.replace("/?", "").replace("(.+)", "{path}") or "/")
    return templates


def observe_request(handler: web.RequestHandler, templates: dict[type[web.RequestHandler], str]) -> None:
    """Time one finished request into the metrics of the handler's gateway (called as each request is logged)."""
    context = getattr(handler, "context", None)
    metrics = getattr(context, "metrics", None)
    if metrics is None:
        return
    route = templates.get(type(handler), UNMATCHED)
    metrics.http_request(handler.request.method or "", route, handler.get_status(), handler.request.request_time())
