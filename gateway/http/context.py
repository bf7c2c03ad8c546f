"""What every handler of the HTTP layer is given: the services it calls and its settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.kernels.service import KernelService
from gateway.kernels.specs import KernelSpecs
from gateway.observability.metrics import GatewayMetrics

from .resume import ClientSessions
from .sessionstore import SessionStore


@dataclass(frozen=True)
class HttpSettings:
    """The HTTP layer's settings (from :class:`gateway.config.GatewayConfig`)."""

    base_url: str = "/"  # EG_BASE_URL
    auth_token: str = ""  # EG_AUTH_TOKEN; empty: no authentication
    list_kernels: bool = True  # EG_LIST_KERNELS
    ws_ping_interval: float = 30.0  # EG_WS_PING_INTERVAL_SECS; 0: no pings
    gateway_user: str = "jovyan"  # KERNEL_USERNAME when a request names none (the gateway's OS user, as EG)
    nudge_timeout: float = 10.0  # bound on waiting for a new websocket's iopub subscription to take effect
    metrics_auth: bool = True  # EG_METRICS_AUTH; False: /metrics answers without the token
    buffer_offline_messages: bool = True  # EG_BUFFER_OFFLINE_MESSAGES; False: a dropped websocket's session ends
    unsent_limit: int = 32 * 1024 * 1024  # bytes a websocket client may leave unread before it is dropped


ReadinessCheck = Callable[[], Mapping[str, Any]]
"""Named checks for ``/readyz`` (informers healthy, response listener up...): all must hold.  Each is a bool,
or a :class:`gateway.http.health.Check` saying why it fails."""


@dataclass
class HttpContext:
    """The kernel service, kernelspecs, sessions and settings the handlers share (one per application)."""

    service: KernelService
    specs: KernelSpecs
    settings: HttpSettings = field(default_factory=HttpSettings)
    sessions: SessionStore = field(default_factory=SessionStore)
    readiness: ReadinessCheck = lambda: {}
    websockets: set[Any] = field(default_factory=set)
    """Open websocket handlers, closed by the app when the gateway stops."""
    metrics: GatewayMetrics | None = None
    """The gateway's metrics: served at ``/metrics``, fed with each request's latency."""
    client_sessions: ClientSessions = field(init=False)
    """Websocket client sessions that may be resumed (:mod:`gateway.http.resume`); closed by the app as it stops."""

    def __post_init__(self) -> None:
        self.client_sessions = ClientSessions(self.service, enabled=self.settings.buffer_offline_messages)
