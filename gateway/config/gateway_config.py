""":class:`GatewayConfig`: every settings group in one traitlets ``Configurable``, checked when it is built.

The groups (``server``, ``kernelspecs``, ``lifecycle``, ``placement``, ``replicas``) each
hold their traits, their ``EG_*`` defaults and their checks; this class joins
them, so ``c.GatewayConfig.<trait>`` configures any of them, and reads every
value in its constructor, so a bad variable stops the gateway at startup.
"""

from __future__ import annotations

import logging
from typing import Any

from traitlets.config import Configurable

from .kernelspecs import KernelSpecConfig
from .lifecycle import KernelLifecycleConfig
from .placement import PlacementConfig
from .replicas import ReplicaConfig
from .server import ServerConfig

log = logging.getLogger("gateway.config")


class GatewayConfig(Configurable, ServerConfig, KernelSpecConfig, KernelLifecycleConfig, PlacementConfig,
                    ReplicaConfig):
    """Every gateway setting, defaulting to its ``EG_*`` environment variable.

    Built once by the composition root (``gateway.app``, via ``gateway.cli``),
    and by tests and scenarios with traits given as keyword arguments.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name in sorted(self.trait_names(config=True)):
            getattr(self, name)  # read every default now: a bad variable fails at startup
        self._check_server()
        self._check_kernel_lifecycle()
        self._check_placement()
        self._check_replicas()
        if self.tunneling_enabled:
            log.warning("EG_TUNNELING_ENABLED is set, but tunneling is not supported: kernels are reached directly")
