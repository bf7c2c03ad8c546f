"""The gateway configurations the scenarios need, said once for every target.

Each :class:`Variant` is what an operator would set on the gateway's
Deployment (``env``, used by ``e2e/`` on kind) and the same settings as
:class:`gateway.config.GatewayConfig` traits (``traits``, used where the
scenarios start the gateway in-process).  ``e2e/test_deploy.py`` checks that
the two say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Variant:
    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    traits: Mapping[str, Any] = field(default_factory=dict)


DEFAULT = Variant("default")
"""The gateway as the manifests deploy it: a namespace per kernel."""
SHARED = Variant("shared", {"EG_SHARED_NAMESPACE": "True"}, {"shared_namespace": True})
"""Every kernel in the gateway's own namespace."""
CULL_IDLE_SECONDS = 3
CULLING = Variant("culling", {"EG_CULL_IDLE_TIMEOUT": str(CULL_IDLE_SECONDS), "EG_CULL_INTERVAL": "1"},
                  {"cull_idle_timeout": float(CULL_IDLE_SECONDS), "cull_interval": 1.0})
"""Kernels idle for a few seconds are culled."""

VARIANTS = {variant.name: variant for variant in (DEFAULT, SHARED, CULLING)}

GATEWAY_NAMESPACE = "enterprise-gateway"
"""``EG_NAMESPACE`` of every target (the manifests' namespace)."""
