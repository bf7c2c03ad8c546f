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

One module per concern, each naming the variables it reads: ``server`` (where
the gateway listens, HTTP and its response listener, logging), ``kernelspecs``
(the kernelspecs offered and to whom), ``lifecycle`` (kernel env, launch
timeouts, limits, culling), ``placement`` (namespaces, service accounts, ports
and ids of kernel pods), ``replicas`` (this replica's name, the duties' Lease
timing); ``values`` reads and checks one value;
``gateway_config`` joins the groups into :class:`GatewayConfig`.
"""

from .gateway_config import GatewayConfig
from .kernelspecs import PACKAGED_KERNELSPECS
from .server import LOG_LEVELS
from .values import ConfigError, parse_bool, parse_int, parse_list, parse_seconds

__all__ = [
    "LOG_LEVELS",
    "PACKAGED_KERNELSPECS",
    "ConfigError",
    "GatewayConfig",
    "parse_bool",
    "parse_int",
    "parse_list",
    "parse_seconds",
]
