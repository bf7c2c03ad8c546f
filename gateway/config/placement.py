"""Where and as whom kernel pods run on Kubernetes: namespaces, roles, service accounts, ports and ids.

Variables: ``EG_NAMESPACE``, ``EG_KERNEL_CLUSTER_ROLE``, ``EG_SHARED_NAMESPACE``,
``EG_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME``, ``EG_SERVICE_ACCOUNT_NAME``,
``EG_KERNEL_NAMESPACE_SELECTOR``, ``EG_ALLOWED_KERNEL_IMAGES``, ``EG_PORT_RANGE``,
``EG_PROHIBITED_UIDS`` and ``EG_PROHIBITED_GIDS``.  :meth:`PlacementConfig.provisioner_settings` hands them
to the provisioner as a frozen :class:`~gateway.provisioner.model.ProvisionerSettings`,
with the address of the started response listener (see ``server``).
"""

from __future__ import annotations

from traitlets import Bool, HasTraits, Int, List, Unicode, default

from gateway.provisioner.model import DEFAULT_KERNEL_NAMESPACE_SELECTOR, ProvisionerSettings
from gateway.provisioner.policy import check_image_pattern, parse_selector

from .values import ConfigError, bool_env, env, ids_env, parse_list, shown


class PlacementConfig(HasTraits):
    """The provisioner's settings, one part of :class:`~gateway.config.GatewayConfig`."""

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
    allowed_kernel_images = List(
        Unicode(), help="Image patterns a client's KERNEL_IMAGE may name besides its kernelspec's image "
        "(EG_ALLOWED_KERNEL_IMAGES, e.g. registry.example.com/team/*); empty: none; '*': any, as Enterprise Gateway."
    ).tag(config=True)
    port_range = Unicode(help="Ports kernels may use, 'LOW..HIGH' (EG_PORT_RANGE); '0..0': any.").tag(config=True)
    prohibited_uids = List(Int(), help="KERNEL_UID values refused (EG_PROHIBITED_UIDS).").tag(config=True)
    prohibited_gids = List(Int(), help="KERNEL_GID values refused (EG_PROHIBITED_GIDS).").tag(config=True)

    def _check_placement(self) -> None:
        """Called by :class:`~gateway.config.GatewayConfig` once every default is read."""
        try:
            parse_selector(self.kernel_namespace_selector)
        except ValueError as exc:
            raise ConfigError(f"EG_KERNEL_NAMESPACE_SELECTOR: {exc}") from None
        for pattern in self.allowed_kernel_images:
            try:
                check_image_pattern(pattern)
            except ValueError as exc:
                raise ConfigError(f"EG_ALLOWED_KERNEL_IMAGES: {exc}") from None
        if self.port_range and self.port_range != "0..0":
            low, sep, high = self.port_range.partition("..")
            if not (sep and low.isdigit() and high.isdigit() and 0 < int(low) < int(high) < 65536):
                raise ConfigError(f"EG_PORT_RANGE must look like 40000..41000, not {shown(self.port_range)}")

    def provisioner_settings(self, *, response_address: str = "") -> ProvisionerSettings:
        """The provisioner's settings; ``response_address`` is the started response listener's ``host:port``."""
        return ProvisionerSettings(
            gateway_namespace=self.namespace,
            kernel_cluster_role=self.kernel_cluster_role,
            shared_namespace=self.shared_namespace,
            default_service_account=self.default_kernel_service_account_name,
            gateway_service_account=self.service_account_name,
            kernel_namespace_selector=self.kernel_namespace_selector,
            allowed_kernel_images=tuple(self.allowed_kernel_images),
            port_range=None if self.port_range in ("", "0..0") else self.port_range,
            prohibited_uids=frozenset(self.prohibited_uids),
            prohibited_gids=frozenset(self.prohibited_gids),
            response_address=response_address,
        )

    @default("namespace")
    def _namespace(self) -> str:
        return (env("EG_NAMESPACE") or "default").strip()

    @default("kernel_cluster_role")
    def _kernel_cluster_role(self) -> str:
        return (env("EG_KERNEL_CLUSTER_ROLE") or "kernel-controller").strip()

    @default("shared_namespace")
    def _shared_namespace(self) -> bool:
        return bool_env("EG_SHARED_NAMESPACE", False)

    @default("default_kernel_service_account_name")
    def _default_kernel_service_account_name(self) -> str:
        return (env("EG_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME") or "default").strip()

    @default("service_account_name")
    def _service_account_name(self) -> str:
        return (env("EG_SERVICE_ACCOUNT_NAME") or "enterprise-gateway-sa").strip()

    @default("kernel_namespace_selector")
    def _kernel_namespace_selector(self) -> str:
        value = env("EG_KERNEL_NAMESPACE_SELECTOR")
        return DEFAULT_KERNEL_NAMESPACE_SELECTOR if value is None else value.strip()

    @default("allowed_kernel_images")
    def _allowed_kernel_images(self) -> list[str]:
        return parse_list("EG_ALLOWED_KERNEL_IMAGES", env("EG_ALLOWED_KERNEL_IMAGES") or "")

    @default("port_range")
    def _port_range(self) -> str:
        return (env("EG_PORT_RANGE") or "0..0").strip()

    @default("prohibited_uids")
    def _prohibited_uids(self) -> list[int]:
        return ids_env("EG_PROHIBITED_UIDS")

    @default("prohibited_gids")
    def _prohibited_gids(self) -> list[int]:
        return ids_env("EG_PROHIBITED_GIDS")
