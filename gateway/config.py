"""The gateway's settings, read from ``EG_*`` environment variables as Enterprise Gateway reads them.

:class:`GatewayConfig` is a traitlets ``Configurable``: every setting can be set
from a traitlets config (``c.GatewayConfig.max_kernels = 10``), and its default
comes from the environment variable Enterprise Gateway documents for it (the
seed's deployment sets ``EG_NAMESPACE``, ``EG_KERNEL_CLUSTER_ROLE``,
``EG_SHARED_NAMESPACE``, ``EG_TUNNELING_ENABLED``, ``EG_CULL_IDLE_TIMEOUT``,
``EG_LOG_LEVEL``, ``EG_KERNEL_LAUNCH_TIMEOUT`` and ``EG_KERNEL_WHITELIST``).

The composition root (``gateway.app``) builds one at startup; every value is
read and checked in the constructor, so a bad variable stops the gateway at
once with a :class:`ConfigError` naming it.  :meth:`GatewayConfig.provisioner_settings`
and :meth:`GatewayConfig.kernel_settings` hand the lower layers frozen values.

Value formats follow Enterprise Gateway: booleans are ``True``/``False`` in any
case (also ``1``/``0``, ``yes``/``no``); lists are comma-separated, except
that the kernel allow-list also takes the Python list literal the seed's
deployment uses (``"['r_kubernetes','python_kubernetes']"``), parsed as a
literal (never evaluated).
"""

from __future__ import annotations

import ast
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_path
from traitlets import Bool, Float, Int, List, Unicode, default
from traitlets.config import Configurable

from gateway.kernels.settings import KernelSettings
from gateway.provisioner.model import DEFAULT_KERNEL_NAMESPACE_SELECTOR, ProvisionerSettings
from gateway.provisioner.policy import parse_selector
from gateway.provisioner.spec import DEFAULT_KERNEL_IMAGE

log = logging.getLogger("gateway.config")

PACKAGED_KERNELSPECS = Path(__file__).resolve().parent.parent / "kernelspecs"
"""The kernelspecs shipped with kernelgate (``kernelspecs/`` of the source tree)."""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
_SHOWN_VALUE_LENGTH = 40


class ConfigError(ValueError):
    """A setting has a value the gateway cannot run with; the message names the variable."""


def _shown(value: str) -> str:
    """The value for an error message, cut short (an operator's typo, not a dump)."""
    return repr(value if len(value) <= _SHOWN_VALUE_LENGTH else value[:_SHOWN_VALUE_LENGTH] + "...")


def parse_bool(name: str, value: str) -> bool:
    """``True``/``False`` (any case), ``1``/``0``, ``yes``/``no``, ``on``/``off``; anything else is a :class:`ConfigError`."""
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name} must be True or False, not {_shown(value)}")


def parse_int(name: str, value: str, *, minimum: int | None = None) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {_shown(value)}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {number}")
    return number


def parse_seconds(name: str, value: str, *, positive: bool = False) -> float:
    """A number of seconds (``"60"``, ``"2.5"``): finite, not negative (positive when asked)."""
    try:
        number = float(value.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {_shown(value)}") from None
    if number != number or number in (float("inf"), float("-inf")) or number < 0 or (positive and number == 0):
        raise ConfigError(f"{name} must be a {'positive' if positive else 'non-negative'} number of seconds, not {_shown(value)}")
    return number


def parse_list(name: str, value: str) -> list[str]:
    """A comma-separated list (blanks dropped), or a Python list literal of strings.

    ``"['a','b']"`` is Enterprise Gateway's ``EG_KERNEL_WHITELIST`` format in the
    seed's deployment: it is read with :func:`ast.literal_eval` and must be a
    list (or tuple) of strings; a value starting with ``[`` that is not one is a
    :class:`ConfigError`.
    """
    text = value.strip()
    if text.startswith(("[", "(")):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ConfigError(f"{name} must be a list of names like ['a','b'] or a,b, not {_shown(value)}") from None
        if not isinstance(parsed, (list, tuple)) or not all(isinstance(item, str) for item in parsed):
            raise ConfigError(f"{name} must be a list of strings, not {_shown(value)}")
        items: Iterable[str] = parsed
    else:
        items = text.split(",")
    return [item.strip() for item in items if item.strip()]


def _env(name: str) -> str | None:
    return os.environ.get(name)


class GatewayConfig(Configurable):
    """Every gateway setting, defaulting to its ``EG_*`` environment variable."""

    # -- where the gateway listens (used by the HTTP layer) --
    ip = Unicode(help="Address the gateway listens on (EG_IP).").tag(config=True)
    port = Int(help="Port the gateway listens on (EG_PORT).").tag(config=True)
    base_url = Unicode(help="Prefix of every URL the gateway serves (EG_BASE_URL).").tag(config=True)
    auth_token = Unicode(help="Token clients must present (EG_AUTH_TOKEN); empty: no auth.").tag(config=True)
    list_kernels = Bool(
        help="Whether GET /api/kernels lists kernels (EG_LIST_KERNELS). Enterprise Gateway's code default is "
        "False, its image sets True; Jupyter Server's gateway client needs the list to cull, so True here."
    ).tag(config=True)
    ws_ping_interval = Float(help="Seconds between websocket pings (EG_WS_PING_INTERVAL_SECS).").tag(config=True)
    log_level = Unicode(help="Logging level (EG_LOG_LEVEL): DEBUG, INFO, WARNING, ERROR or CRITICAL.").tag(config=True)
    tunneling_enabled = Bool(
        help="EG_TUNNELING_ENABLED: accepted for compatibility; tunneling is not supported, kernels are reached directly."
    ).tag(config=True)

    # -- kernelspecs --
    kernel_spec_paths = List(Unicode(), help="Folders holding kernelspec folders, first wins on a name.").tag(config=True)
    allowed_kernels = List(
        Unicode(), help="Kernelspec names clients may use (EG_ALLOWED_KERNELS, or EG_KERNEL_WHITELIST); empty: all."
    ).tag(config=True)
    default_kernel_name = Unicode(help="Kernelspec used when a request names none (EG_DEFAULT_KERNEL_NAME).").tag(config=True)
    authorized_users = List(Unicode(), help="Users allowed to start kernels (EG_AUTHORIZED_USERS); empty: all.").tag(config=True)
    unauthorized_users = List(Unicode(), help="Users never allowed to start kernels (EG_UNAUTHORIZED_USERS).").tag(config=True)
    kernel_image = Unicode(help="Image of kernelspecs that name none (EG_KERNEL_IMAGE).").tag(config=True)

    # -- kernel requests and lifecycle --
    client_envs = List(Unicode(), help="Client env names passed to kernels besides KERNEL_* (EG_CLIENT_ENVS); '*': all.").tag(config=True)
    inherited_envs = List(Unicode(), help="Gateway env names passed to kernels (EG_INHERITED_ENVS).").tag(config=True)
    kernel_launch_timeout = Float(help="Seconds a kernel may take to start (EG_KERNEL_LAUNCH_TIMEOUT).").tag(config=True)
    max_kernel_launch_timeout = Float(
        help="Cap on a client's KERNEL_LAUNCH_TIMEOUT (EG_MAX_KERNEL_LAUNCH_TIMEOUT)."
    ).tag(config=True)
    max_kernels = Int(help="Kernels this gateway runs at most, pending starts included (EG_MAX_KERNELS); -1: no limit.").tag(config=True)
    max_kernels_per_user = Int(help="Kernels per KERNEL_USERNAME at most (EG_MAX_KERNELS_PER_USER); -1: no limit.").tag(config=True)
    restart_limit = Int(help="Automatic restarts of a kernel whose pod died before it is given up (EG_RESTART_LIMIT).").tag(config=True)
    shutdown_wait_time = Float(help="Seconds to wait for a kernel's shutdown_reply (EG_SHUTDOWN_WAIT_TIME).").tag(config=True)
    cull_idle_timeout = Float(help="Seconds of inactivity after which a kernel is culled (EG_CULL_IDLE_TIMEOUT); 0: never.").tag(config=True)
    cull_interval = Float(help="Seconds between checks for idle kernels (EG_CULL_INTERVAL).").tag(config=True)
    cull_connected = Bool(help="Cull idle kernels with connected clients too (EG_CULL_CONNECTED).").tag(config=True)
    cull_busy = Bool(help="Cull kernels reported busy too (EG_CULL_BUSY).").tag(config=True)
    mirror_working_dirs = Bool(help="Pass a client's KERNEL_WORKING_DIR to kernels (EG_MIRROR_WORKING_DIRS).").tag(config=True)

    # -- Kubernetes placement (handed to the provisioner) --
    namespace = Unicode(help="The gateway's namespace, used for every kernel when shared (EG_NAMESPACE).").tag(config=True)
    kernel_cluster_role = Unicode(help="ClusterRole bound in each kernel namespace (EG_KERNEL_CLUSTER_ROLE).").tag(config=True)
    shared_namespace = Bool(help="Run every kernel in the gateway's namespace (EG_SHARED_NAMESPACE).").tag(config=True)
    default_kernel_service_account_name = Unicode(
        help="Service account of kernel pods (EG_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME)."
    ).tag(config=True)
    service_account_name = Unicode(
        help="The gateway's own service account, never given to a kernel in its namespace (EG_SERVICE_ACCOUNT_NAME)."
    ).tag(config=True)
    kernel_namespace_selector = Unicode(
        help="Labels a KERNEL_NAMESPACE must carry, an equality-based label selector (EG_KERNEL_NAMESPACE_SELECTOR)."
    ).tag(config=True)
    port_range = Unicode(help="Ports kernels may use, 'LOW..HIGH' (EG_PORT_RANGE); '0..0': any.").tag(config=True)
    prohibited_uids = List(Int(), help="KERNEL_UID values refused (EG_PROHIBITED_UIDS).").tag(config=True)
    prohibited_gids = List(Int(), help="KERNEL_GID values refused (EG_PROHIBITED_GIDS).").tag(config=True)
    response_ip = Unicode(help="Address of the response listener (EG_RESPONSE_IP); empty: the gateway's own.").tag(config=True)
    response_port = Int(help="Port of the response listener (EG_RESPONSE_PORT).").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name in sorted(self.trait_names(config=True)):
            getattr(self, name)  # read every default now: a bad variable fails at startup
        self._check()
        if self.tunneling_enabled:
            log.warning("EG_TUNNELING_ENABLED is set, but tunneling is not supported: kernels are reached directly")

    def _check(self) -> None:
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"EG_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {_shown(self.log_level)}")
        if not 0 <= self.port < 65536:
            raise ConfigError(f"EG_PORT must be a port number, not {self.port}")
        if not 0 <= self.response_port < 65536:
            raise ConfigError(f"EG_RESPONSE_PORT must be a port number, not {self.response_port}")
        if self.kernel_launch_timeout <= 0:
            raise ConfigError("EG_KERNEL_LAUNCH_TIMEOUT must be a positive number of seconds")
        if self.max_kernel_launch_timeout < self.kernel_launch_timeout:
            raise ConfigError("EG_MAX_KERNEL_LAUNCH_TIMEOUT must not be below EG_KERNEL_LAUNCH_TIMEOUT")
        if self.cull_interval <= 0:
            raise ConfigError("EG_CULL_INTERVAL must be a positive number of seconds")
        if self.restart_limit < 0:
            raise ConfigError("EG_RESTART_LIMIT must not be negative")
        try:
            parse_selector(self.kernel_namespace_selector)
        except ValueError as exc:
            raise ConfigError(f"EG_KERNEL_NAMESPACE_SELECTOR: {exc}") from None
        if self.port_range and self.port_range != "0..0":
            low, sep, high = self.port_range.partition("..")
            if not (sep and low.isdigit() and high.isdigit() and 0 < int(low) < int(high) < 65536):
                raise ConfigError(f"EG_PORT_RANGE must look like 40000..41000, not {_shown(self.port_range)}")

    # -- defaults from the environment --

    @default("ip")
    def _ip(self) -> str:
        return _env("EG_IP") or "127.0.0.1"

    @default("port")
    def _port(self) -> int:
        value = _env("EG_PORT")
        return parse_int("EG_PORT", value, minimum=0) if value else 8888

    @default("base_url")
    def _base_url(self) -> str:
        return _env("EG_BASE_URL") or "/"

    @default("auth_token")
    def _auth_token(self) -> str:
        return _env("EG_AUTH_TOKEN") or ""

    @default("list_kernels")
    def _list_kernels(self) -> bool:
        return _bool_env("EG_LIST_KERNELS", True)

    @default("ws_ping_interval")
    def _ws_ping_interval(self) -> float:
        return _seconds_env("EG_WS_PING_INTERVAL_SECS", 30.0)

    @default("log_level")
    def _log_level(self) -> str:
        return (_env("EG_LOG_LEVEL") or "INFO").strip().upper()

    @default("tunneling_enabled")
    def _tunneling_enabled(self) -> bool:
        return _bool_env("EG_TUNNELING_ENABLED", False)

    @default("kernel_spec_paths")
    def _kernel_spec_paths(self) -> list[str]:
        return [str(PACKAGED_KERNELSPECS), *jupyter_path("kernels")]

    @default("allowed_kernels")
    def _allowed_kernels(self) -> list[str]:
        for name in ("EG_ALLOWED_KERNELS", "EG_KERNEL_WHITELIST"):
            value = _env(name)
            if value is not None and value.strip():
                return parse_list(name, value)
        return []

    @default("default_kernel_name")
    def _default_kernel_name(self) -> str:
        return (_env("EG_DEFAULT_KERNEL_NAME") or "").strip()

    @default("authorized_users")
    def _authorized_users(self) -> list[str]:
        return parse_list("EG_AUTHORIZED_USERS", _env("EG_AUTHORIZED_USERS") or "")

    @default("unauthorized_users")
    def _unauthorized_users(self) -> list[str]:
        value = _env("EG_UNAUTHORIZED_USERS")
        return parse_list("EG_UNAUTHORIZED_USERS", value) if value is not None else ["root"]

    @default("kernel_image")
    def _kernel_image(self) -> str:
        return (_env("EG_KERNEL_IMAGE") or DEFAULT_KERNEL_IMAGE).strip()

    @default("client_envs")
    def _client_envs(self) -> list[str]:
        return parse_list("EG_CLIENT_ENVS", _env("EG_CLIENT_ENVS") or "")

    @default("inherited_envs")
    def _inherited_envs(self) -> list[str]:
        return parse_list("EG_INHERITED_ENVS", _env("EG_INHERITED_ENVS") or "")

    @default("kernel_launch_timeout")
    def _kernel_launch_timeout(self) -> float:
        return _seconds_env("EG_KERNEL_LAUNCH_TIMEOUT", 30.0, positive=True)

    @default("max_kernel_launch_timeout")
    def _max_kernel_launch_timeout(self) -> float:
        return _seconds_env("EG_MAX_KERNEL_LAUNCH_TIMEOUT", max(600.0, self.kernel_launch_timeout), positive=True)

    @default("max_kernels")
    def _max_kernels(self) -> int:
        return _int_env("EG_MAX_KERNELS", -1, minimum=-1)

    @default("max_kernels_per_user")
    def _max_kernels_per_user(self) -> int:
        return _int_env("EG_MAX_KERNELS_PER_USER", -1, minimum=-1)

    @default("restart_limit")
    def _restart_limit(self) -> int:
        return _int_env("EG_RESTART_LIMIT", 5, minimum=0)

    @default("shutdown_wait_time")
    def _shutdown_wait_time(self) -> float:
        return _seconds_env("EG_SHUTDOWN_WAIT_TIME", 5.0)

    @default("cull_idle_timeout")
    def _cull_idle_timeout(self) -> float:
        return _seconds_env("EG_CULL_IDLE_TIMEOUT", 0.0)

    @default("cull_interval")
    def _cull_interval(self) -> float:
        return _seconds_env("EG_CULL_INTERVAL", 300.0, positive=True)

    @default("cull_connected")
    def _cull_connected(self) -> bool:
        return _bool_env("EG_CULL_CONNECTED", False)

    @default("cull_busy")
    def _cull_busy(self) -> bool:
        return _bool_env("EG_CULL_BUSY", False)

    @default("mirror_working_dirs")
    def _mirror_working_dirs(self) -> bool:
        return _bool_env("EG_MIRROR_WORKING_DIRS", False)

    @default("namespace")
    def _namespace(self) -> str:
        return (_env("EG_NAMESPACE") or "default").strip()

    @default("kernel_cluster_role")
    def _kernel_cluster_role(self) -> str:
        return (_env("EG_KERNEL_CLUSTER_ROLE") or "kernel-controller").strip()

    @default("shared_namespace")
    def _shared_namespace(self) -> bool:
        return _bool_env("EG_SHARED_NAMESPACE", False)

    @default("default_kernel_service_account_name")
    def _default_kernel_service_account_name(self) -> str:
        return (_env("EG_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME") or "default").strip()

    @default("service_account_name")
    def _service_account_name(self) -> str:
        return (_env("EG_SERVICE_ACCOUNT_NAME") or "enterprise-gateway-sa").strip()

    @default("kernel_namespace_selector")
    def _kernel_namespace_selector(self) -> str:
        value = _env("EG_KERNEL_NAMESPACE_SELECTOR")
        return DEFAULT_KERNEL_NAMESPACE_SELECTOR if value is None else value.strip()

    @default("port_range")
    def _port_range(self) -> str:
        return (_env("EG_PORT_RANGE") or "0..0").strip()

    @default("prohibited_uids")
    def _prohibited_uids(self) -> list[int]:
        return _ids_env("EG_PROHIBITED_UIDS")

    @default("prohibited_gids")
    def _prohibited_gids(self) -> list[int]:
        return _ids_env("EG_PROHIBITED_GIDS")

    @default("response_ip")
    def _response_ip(self) -> str:
        return (_env("EG_RESPONSE_IP") or "").strip()

    @default("response_port")
    def _response_port(self) -> int:
        return _int_env("EG_RESPONSE_PORT", 8877, minimum=0)

    # -- what the lower layers get --

    def provisioner_settings(self, *, response_address: str = "") -> ProvisionerSettings:
        """The provisioner's settings; ``response_address`` is the started response listener's ``host:port``."""
        return ProvisionerSettings(
            gateway_namespace=self.namespace,
            kernel_cluster_role=self.kernel_cluster_role,
            shared_namespace=self.shared_namespace,
            default_service_account=self.default_kernel_service_account_name,
            gateway_service_account=self.service_account_name,
            kernel_namespace_selector=self.kernel_namespace_selector,
            port_range=None if self.port_range in ("", "0..0") else self.port_range,
            prohibited_uids=frozenset(self.prohibited_uids),
            prohibited_gids=frozenset(self.prohibited_gids),
            response_address=response_address,
        )

    def kernel_settings(self, environ: Mapping[str, str] | None = None) -> KernelSettings:
        """The kernel service's settings; ``environ`` (default ``os.environ``) supplies EG_INHERITED_ENVS values."""
        environ = os.environ if environ is None else environ
        return KernelSettings(
            client_envs=frozenset(self.client_envs),
            inherited_env={name: environ[name] for name in self.inherited_envs if name in environ},
            launch_timeout=self.kernel_launch_timeout,
            max_launch_timeout=self.max_kernel_launch_timeout,
            max_kernels=None if self.max_kernels < 0 else self.max_kernels,
            max_kernels_per_user=None if self.max_kernels_per_user < 0 else self.max_kernels_per_user,
            restart_limit=self.restart_limit,
            shutdown_wait_time=self.shutdown_wait_time,
            cull_idle_timeout=self.cull_idle_timeout,
            cull_interval=self.cull_interval,
            cull_connected=self.cull_connected,
            cull_busy=self.cull_busy,
            mirror_working_dirs=self.mirror_working_dirs,
        )

    def kernel_specs_arguments(self) -> dict[str, Any]:
        """Keyword arguments for :class:`gateway.kernels.specs.KernelSpecs` (paths first, in order)."""
        return {
            "paths": [Path(p) for p in self.kernel_spec_paths],
            "allowed": frozenset(self.allowed_kernels) or None,
            "default_name": self.default_kernel_name or None,
            "authorized_users": frozenset(self.authorized_users),
            "unauthorized_users": frozenset(self.unauthorized_users),
            "default_image": self.kernel_image,
        }


def _bool_env(name: str, fallback: bool) -> bool:
    value = _env(name)
    return fallback if value is None or not value.strip() else parse_bool(name, value)


def _int_env(name: str, fallback: int, *, minimum: int | None = None) -> int:
    value = _env(name)
    return fallback if value is None or not value.strip() else parse_int(name, value, minimum=minimum)


def _seconds_env(name: str, fallback: float, *, positive: bool = False) -> float:
    value = _env(name)
    return fallback if value is None or not value.strip() else parse_seconds(name, value, positive=positive)


def _ids_env(name: str) -> list[int]:
    value = _env(name)
    if value is None:
        return [0]
    return [parse_int(name, item, minimum=0) for item in parse_list(name, value)]
