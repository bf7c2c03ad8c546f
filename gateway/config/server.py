"""Where the gateway listens, how it serves HTTP and WebSocket clients, and how much it logs.

Variables: ``EG_IP``, ``EG_PORT``, ``EG_BASE_URL``, ``EG_AUTH_TOKEN``,
``EG_LIST_KERNELS``, ``EG_WS_PING_INTERVAL_SECS``, ``EG_BUFFER_OFFLINE_MESSAGES``, ``EG_LOG_LEVEL``,
``EG_METRICS_AUTH``, ``EG_TUNNELING_ENABLED`` (accepted, not supported), ``EG_READINESS_GRACE_SECS``
(how long failing list and watch calls leave ``/readyz`` at 200), and
``EG_RESPONSE_IP`` and ``EG_RESPONSE_PORT`` for the listener kernel launchers
send their connection info to.  ``gateway.app`` reads these traits to start the HTTP server and the
response listener, and to fill the HTTP layer's settings.
"""

from __future__ import annotations

from traitlets import Bool, Float, HasTraits, Int, Unicode, default

from .values import ConfigError, bool_env, env, int_env, parse_int, seconds_env, shown

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ServerConfig(HasTraits):
    """The HTTP server's and the response listener's settings, one part of :class:`~gateway.config.GatewayConfig`."""

    ip = Unicode(help="Address the gateway listens on (EG_IP).").tag(config=True)
    port = Int(help="Port the gateway listens on (EG_PORT).").tag(config=True)
    base_url = Unicode(help="Prefix of every URL the gateway serves (EG_BASE_URL).").tag(config=True)
    auth_token = Unicode(help="Token clients must present (EG_AUTH_TOKEN); empty: no auth.").tag(config=True)
    list_kernels = Bool(
        help="Whether GET /api/kernels lists kernels (EG_LIST_KERNELS). Enterprise Gateway's code default is "
        "False, its image sets True; Jupyter Server's gateway client needs the list to cull, so True here."
    ).tag(config=True)
    ws_ping_interval = Float(help="Seconds between websocket pings (EG_WS_PING_INTERVAL_SECS).").tag(config=True)
    buffer_offline_messages = Bool(
        help="Whether what a kernel sends a client whose websocket dropped is kept for the client's next websocket "
        "of the same session_id, as Jupyter Server's buffer_offline_messages (EG_BUFFER_OFFLINE_MESSAGES, default True)."
    ).tag(config=True)
    log_level = Unicode(help="Logging level (EG_LOG_LEVEL): DEBUG, INFO, WARNING, ERROR or CRITICAL.").tag(config=True)
    metrics_auth = Bool(
        help="Whether /metrics asks for the token like the rest of the API (EG_METRICS_AUTH, default True); False "
        "lets a Prometheus without the token scrape it."
    ).tag(config=True)
    tunneling_enabled = Bool(
        help="EG_TUNNELING_ENABLED: accepted for compatibility; tunneling is not supported, kernels are reached directly."
    ).tag(config=True)
    response_ip = Unicode(
        help="Address of the response listener (EG_RESPONSE_IP): launchers call it, and the listener binds it; "
        "empty: launchers call the gateway's own address and the listener binds 0.0.0.0."
    ).tag(config=True)
    response_port = Int(help="Port of the response listener (EG_RESPONSE_PORT).").tag(config=True)
    readiness_grace = Float(
        help="Seconds the gateway stays ready while its list and watch calls to the Kubernetes API fail "
        "(EG_READINESS_GRACE_SECS); rejected credentials make it unready at once."
    ).tag(config=True)

    def _check_server(self) -> None:
        """Called by :class:`~gateway.config.GatewayConfig` once every default is read."""
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"EG_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {shown(self.log_level)}")
        if not 0 <= self.port < 65536:
            raise ConfigError(f"EG_PORT must be a port number, not {self.port}")
        if not 0 <= self.response_port < 65536:
            raise ConfigError(f"EG_RESPONSE_PORT must be a port number, not {self.response_port}")
        if not 0 <= self.readiness_grace < float("inf"):
            raise ConfigError(f"EG_READINESS_GRACE_SECS must be a non-negative number of seconds, not {self.readiness_grace}")

    @default("ip")
    def _ip(self) -> str:
        return env("EG_IP") or "127.0.0.1"

    @default("port")
    def _port(self) -> int:
        value = env("EG_PORT")
        return parse_int("EG_PORT", value, minimum=0) if value else 8888

    @default("base_url")
    def _base_url(self) -> str:
        return env("EG_BASE_URL") or "/"

    @default("auth_token")
    def _auth_token(self) -> str:
        return env("EG_AUTH_TOKEN") or ""

    @default("list_kernels")
    def _list_kernels(self) -> bool:
        return bool_env("EG_LIST_KERNELS", True)

    @default("ws_ping_interval")
    def _ws_ping_interval(self) -> float:
        return seconds_env("EG_WS_PING_INTERVAL_SECS", 30.0)

    @default("buffer_offline_messages")
    def _buffer_offline_messages(self) -> bool:
        return bool_env("EG_BUFFER_OFFLINE_MESSAGES", True)

    @default("log_level")
    def _log_level(self) -> str:
        return (env("EG_LOG_LEVEL") or "INFO").strip().upper()

    @default("metrics_auth")
    def _metrics_auth(self) -> bool:
        return bool_env("EG_METRICS_AUTH", True)

    @default("tunneling_enabled")
    def _tunneling_enabled(self) -> bool:
        return bool_env("EG_TUNNELING_ENABLED", False)

    @default("response_ip")
    def _response_ip(self) -> str:
        return (env("EG_RESPONSE_IP") or "").strip()

    @default("readiness_grace")
    def _readiness_grace(self) -> float:
        return seconds_env("EG_READINESS_GRACE_SECS", 5.0)

    @default("response_port")
    def _response_port(self) -> int:
        return int_env("EG_RESPONSE_PORT", 8877, minimum=0)
