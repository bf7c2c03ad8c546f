"""How the kernel service treats kernel requests and running kernels: env, launch timeouts, limits, culling.

Variables: ``EG_CLIENT_ENVS``, ``EG_INHERITED_ENVS``, ``EG_KERNEL_LAUNCH_TIMEOUT``,
``EG_MAX_KERNEL_LAUNCH_TIMEOUT``, ``EG_MAX_KERNELS``, ``EG_MAX_KERNELS_PER_USER``,
``EG_RESTART_LIMIT``, ``EG_SHUTDOWN_WAIT_TIME``, ``EG_CULL_IDLE_TIMEOUT``,
``EG_CULL_INTERVAL``, ``EG_CULL_CONNECTED``, ``EG_CULL_BUSY``,
``EG_MIRROR_WORKING_DIRS``, ``EG_ACTIVITY_WRITE_INTERVAL`` and ``EG_LEFTOVER_GRACE``.  :meth:`KernelLifecycleConfig.kernel_settings` hands
them to the kernel service as a frozen :class:`~gateway.kernels.settings.KernelSettings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from traitlets import Bool, Float, HasTraits, Int, List, Unicode, default

from gateway.kernels.settings import KernelSettings

from .values import ConfigError, bool_env, env, int_env, parse_list, seconds_env


class KernelLifecycleConfig(HasTraits):
    """The kernel service's settings, one part of :class:`~gateway.config.GatewayConfig`."""

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
    activity_write_interval = Float(
        help="Seconds by which a kernel's recorded last activity may lag what a replica saw before it writes it "
        "back (EG_ACTIVITY_WRITE_INTERVAL); at most half the cull interval is used."
    ).tag(config=True)
    leftover_grace = Float(
        help="Seconds a kernel pod of this gateway without a kernel record is left before the lease holder "
        "deletes it (EG_LEFTOVER_GRACE)."
    ).tag(config=True)

    def _check_kernel_lifecycle(self) -> None:
        """Called by :class:`~gateway.config.GatewayConfig` once every default is read."""
        if self.kernel_launch_timeout <= 0:
            raise ConfigError("EG_KERNEL_LAUNCH_TIMEOUT must be a positive number of seconds")
        if self.max_kernel_launch_timeout < self.kernel_launch_timeout:
            raise ConfigError("EG_MAX_KERNEL_LAUNCH_TIMEOUT must not be below EG_KERNEL_LAUNCH_TIMEOUT")
        if self.cull_interval <= 0:
            raise ConfigError("EG_CULL_INTERVAL must be a positive number of seconds")
        if self.restart_limit < 0:
            raise ConfigError("EG_RESTART_LIMIT must not be negative")
        if self.activity_write_interval <= 0:
            raise ConfigError("EG_ACTIVITY_WRITE_INTERVAL must be a positive number of seconds")
        if self.leftover_grace <= 0:
            raise ConfigError("EG_LEFTOVER_GRACE must be a positive number of seconds")

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
            activity_write_interval=min(self.activity_write_interval, self.cull_interval / 2),
            leftover_grace=self.leftover_grace,
        )

    @default("client_envs")
    def _client_envs(self) -> list[str]:
        return parse_list("EG_CLIENT_ENVS", env("EG_CLIENT_ENVS") or "")

    @default("inherited_envs")
    def _inherited_envs(self) -> list[str]:
        return parse_list("EG_INHERITED_ENVS", env("EG_INHERITED_ENVS") or "")

    @default("kernel_launch_timeout")
    def _kernel_launch_timeout(self) -> float:
        return seconds_env("EG_KERNEL_LAUNCH_TIMEOUT", 30.0, positive=True)

    @default("max_kernel_launch_timeout")
    def _max_kernel_launch_timeout(self) -> float:
        return seconds_env("EG_MAX_KERNEL_LAUNCH_TIMEOUT", max(600.0, self.kernel_launch_timeout), positive=True)

    @default("max_kernels")
    def _max_kernels(self) -> int:
        return int_env("EG_MAX_KERNELS", -1, minimum=-1)

    @default("max_kernels_per_user")
    def _max_kernels_per_user(self) -> int:
        return int_env("EG_MAX_KERNELS_PER_USER", -1, minimum=-1)

    @default("restart_limit")
    def _restart_limit(self) -> int:
        return int_env("EG_RESTART_LIMIT", 5, minimum=0)

    @default("shutdown_wait_time")
    def _shutdown_wait_time(self) -> float:
        return seconds_env("EG_SHUTDOWN_WAIT_TIME", 5.0)

    @default("cull_idle_timeout")
    def _cull_idle_timeout(self) -> float:
        return seconds_env("EG_CULL_IDLE_TIMEOUT", 0.0)

    @default("cull_interval")
    def _cull_interval(self) -> float:
        return seconds_env("EG_CULL_INTERVAL", 300.0, positive=True)

    @default("cull_connected")
    def _cull_connected(self) -> bool:
        return bool_env("EG_CULL_CONNECTED", False)

    @default("cull_busy")
    def _cull_busy(self) -> bool:
        return bool_env("EG_CULL_BUSY", False)

    @default("mirror_working_dirs")
    def _mirror_working_dirs(self) -> bool:
        return bool_env("EG_MIRROR_WORKING_DIRS", False)

    @default("activity_write_interval")
    def _activity_write_interval(self) -> float:
        return seconds_env("EG_ACTIVITY_WRITE_INTERVAL", 30.0, positive=True)

    @default("leftover_grace")
    def _leftover_grace(self) -> float:
        return seconds_env("EG_LEFTOVER_GRACE", 60.0, positive=True)
