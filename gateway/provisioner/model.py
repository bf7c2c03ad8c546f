"""The values passed between the kernel service and the provisioner.

The composition root has ``gateway.config`` build :class:`ProvisionerSettings`
once; the kernel service builds a :class:`LaunchRequest` per start or restart,
keeps the :class:`Placement` a first launch chose (a restart reuses it) and the
:class:`RunningKernel` each launch returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .connection import ConnectionInfo
from .spec import KernelSpecInfo

DEFAULT_KERNEL_NAMESPACE_SELECTOR = "app=enterprise-gateway,component=kernel"
"""The labels of the ``kernel-namespace`` manifest's ``kernel-ns``: what marks a namespace prepared for kernels."""


@dataclass(frozen=True)
class ProvisionerSettings:
    """The gateway-wide settings of kernel launches (``EG_*`` variables)."""

    gateway_namespace: str = "default"  # EG_NAMESPACE
    kernel_cluster_role: str = "kernel-controller"  # EG_KERNEL_CLUSTER_ROLE
    shared_namespace: bool = False  # EG_SHARED_NAMESPACE
    default_service_account: str = "default"  # EG_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME
    port_range: str | None = None  # EG_PORT_RANGE, "LOW..HIGH"
    prohibited_uids: frozenset[int] = frozenset({0})  # EG_PROHIBITED_UIDS
    prohibited_gids: frozenset[int] = frozenset({0})  # EG_PROHIBITED_GIDS
    gateway_service_account: str = "enterprise-gateway-sa"  # EG_SERVICE_ACCOUNT_NAME
    kernel_namespace_selector: str = DEFAULT_KERNEL_NAMESPACE_SELECTOR  # EG_KERNEL_NAMESPACE_SELECTOR
    """Labels a namespace named by ``KERNEL_NAMESPACE`` must carry (``gateway.provisioner.policy``)."""
    allowed_kernel_images: tuple[str, ...] = ("*",)  # EG_ALLOWED_KERNEL_IMAGES
    """Patterns of the images a client's ``KERNEL_IMAGE`` may name besides its kernelspec's own
    (``gateway.provisioner.policy``); ``*`` allows any, as Enterprise Gateway does.  ``gateway.config``
    defaults to none: only the kernelspec's image."""
    response_address: str = ""
    """``host:port`` the launchers call back; empty: the response listener's own address."""


@dataclass(frozen=True)
class LaunchRequest:
    """One kernel to launch.

    ``env`` is already filtered and validated by the kernel service: the
    kernelspec's env, then the client's ``KERNEL_*`` and allowed variables.
    It goes into the pod as is; nothing of the gateway's own environment does.
    """

    kernel_id: str
    username: str
    spec: KernelSpecInfo
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 60.0


@dataclass(frozen=True)
class Placement:
    """Where a kernel lives, kept across its restarts.

    ``owns_namespace``: the gateway created the namespace (and its role
    binding) for this kernel and deletes them when the kernel is released,
    never otherwise.
    """

    namespace: str
    service_account: str
    owns_namespace: bool
    pod_name: str


@dataclass(frozen=True)
class RunningKernel:
    """A launched kernel: where it is, how to reach it, and which pod it is."""

    placement: Placement
    connection: ConnectionInfo
    pod_ip: str
    pod_uid: str

    @property
    def kernel_id(self) -> str:
        return self.connection.kernel_id
