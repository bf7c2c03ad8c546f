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
    restart_backoff: float = 1.0
    """Seconds: the pause after an auto-restart's first failed relaunch is drawn between half of this and all of
    it, and doubles with each further failure in a row (``gateway.kernels.restarts.RestartPauses``)."""
    restart_backoff_cap: float = 30.0
    """Seconds: the longest of those pauses."""
    shutdown_wait_time: float = 5.0  # EG_SHUTDOWN_WAIT_TIME: wait for shutdown_reply / the pod to exit
    cull_idle_timeout: float = 0.0  # EG_CULL_IDLE_TIMEOUT; 0: no culling
    cull_interval: float = 300.0  # EG_CULL_INTERVAL
    cull_connected: bool = False  # EG_CULL_CONNECTED
    cull_busy: bool = False  # EG_CULL_BUSY
    mirror_working_dirs: bool = False  # EG_MIRROR_WORKING_DIRS: keep a client's KERNEL_WORKING_DIR
    stop_timeout: float = 30.0
    """Bound on :meth:`KernelService.stop`: shutting down every kernel, or finishing the operations in progress."""
    shut_down_kernels_at_stop: bool = True
    """Whether the service's stop shuts every kernel down: only on the embedded cluster, which ends with the
    gateway's process.  On a real cluster the kernels are the cluster's: another replica or the gateway's
    successor serves them."""
    activity_write_interval: float = 30.0  # EG_ACTIVITY_WRITE_INTERVAL: recorded last_activity lags by at most this
    leftover_grace: float = 60.0  # EG_LEFTOVER_GRACE: age of a kernel pod without a record before it is collected
    deadline_grace: float = 10.0
    """Added to a launch's, restart's or shutdown's own bound to make its record's deadline, past which the
    lease holder takes it over."""
