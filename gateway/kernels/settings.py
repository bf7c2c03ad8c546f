"""The kernel service's settings, filled once by :meth:`gateway.config.GatewayConfig.kernel_settings`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class KernelSettings:
    """How the kernel service treats requests and kernels (Enterprise Gateway's variable in each comment)."""

    client_envs: frozenset[str] = frozenset()  # EG_CLIENT_ENVS: client env passed besides KERNEL_*; "*": all
    inherited_env: Mapping[str, str] = field(default_factory=dict)  # EG_INHERITED_ENVS, with the gateway's values
    launch_timeout: float = 30.0  # EG_KERNEL_LAUNCH_TIMEOUT, unless the client sends KERNEL_LAUNCH_TIMEOUT
    max_launch_timeout: float = 600.0  # EG_MAX_KERNEL_LAUNCH_TIMEOUT: the cap on a client's KERNEL_LAUNCH_TIMEOUT
    max_kernels: int | None = None  # EG_MAX_KERNELS (pending starts count)
    max_kernels_per_user: int | None = None  # EG_MAX_KERNELS_PER_USER (pending starts count)
    restart_limit: int = 5  # EG_RESTART_LIMIT: automatic restarts after pod deaths before a kernel is given up
    shutdown_wait_time: float = 5.0  # EG_SHUTDOWN_WAIT_TIME: wait for shutdown_reply / the pod to exit
    cull_idle_timeout: float = 0.0  # EG_CULL_IDLE_TIMEOUT; 0: no culling
    cull_interval: float = 300.0  # EG_CULL_INTERVAL
    cull_connected: bool = False  # EG_CULL_CONNECTED
    cull_busy: bool = False  # EG_CULL_BUSY
    mirror_working_dirs: bool = False  # EG_MIRROR_WORKING_DIRS: keep a client's KERNEL_WORKING_DIR
    stop_timeout: float = 30.0
    """Bound on :meth:`KernelService.stop` shutting down every kernel (a gateway's SIGTERM grace period)."""
