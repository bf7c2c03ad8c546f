"""Which kernelspecs the gateway offers, to whom, and the image of those that name none.

Variables: ``EG_ALLOWED_KERNELS`` (or Enterprise Gateway's older
``EG_KERNEL_WHITELIST``), ``EG_DEFAULT_KERNEL_NAME``, ``EG_AUTHORIZED_USERS``,
``EG_UNAUTHORIZED_USERS`` and ``EG_KERNEL_IMAGE``; the kernelspec folders
(``kernel_spec_paths``) have no variable: the packaged kernelspecs, then the
Jupyter paths.  :meth:`KernelSpecConfig.kernel_specs_arguments` hands them to
:class:`gateway.kernels.specs.KernelSpecs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_path
from traitlets import HasTraits, List, Unicode, default

from gateway.provisioner.spec import DEFAULT_KERNEL_IMAGE
from gateway.shipped import shipped_root

from .values import env, parse_list

PACKAGED_KERNELSPECS = shipped_root() / "kernelspecs"
"""The kernelspecs shipped with kernelgate (``kernelspecs/`` of the source tree, or its installed copy)."""


class KernelSpecConfig(HasTraits):
    """The kernelspec catalogue's settings, one part of :class:`~gateway.config.GatewayConfig`."""

    kernel_spec_paths = List(Unicode(), help="Folders holding kernelspec folders, first wins on a name.").tag(config=True)
    allowed_kernels = List(
        Unicode(), help="Kernelspec names clients may use (EG_ALLOWED_KERNELS, or EG_KERNEL_WHITELIST); empty: all."
    ).tag(config=True)
    default_kernel_name = Unicode(help="Kernelspec used when a request names none (EG_DEFAULT_KERNEL_NAME).").tag(config=True)
    authorized_users = List(Unicode(), help="Users allowed to start kernels (EG_AUTHORIZED_USERS); empty: all.").tag(config=True)
    unauthorized_users = List(Unicode(), help="Users never allowed to start kernels (EG_UNAUTHORIZED_USERS).").tag(config=True)
    kernel_image = Unicode(help="Image of kernelspecs that name none (EG_KERNEL_IMAGE).").tag(config=True)

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

    @default("kernel_spec_paths")
    def _kernel_spec_paths(self) -> list[str]:
        return [str(PACKAGED_KERNELSPECS), *jupyter_path("kernels")]

    @default("allowed_kernels")
    def _allowed_kernels(self) -> list[str]:
        for name in ("EG_ALLOWED_KERNELS", "EG_KERNEL_WHITELIST"):
            value = env(name)
            if value is not None and value.strip():
                return parse_list(name, value)
        return []

    @default("default_kernel_name")
    def _default_kernel_name(self) -> str:
        return (env("EG_DEFAULT_KERNEL_NAME") or "").strip()

    @default("authorized_users")
    def _authorized_users(self) -> list[str]:
        return parse_list("EG_AUTHORIZED_USERS", env("EG_AUTHORIZED_USERS") or "")

    @default("unauthorized_users")
    def _unauthorized_users(self) -> list[str]:
        value = env("EG_UNAUTHORIZED_USERS")
        return parse_list("EG_UNAUTHORIZED_USERS", value) if value is not None else ["root"]

    @default("kernel_image")
    def _kernel_image(self) -> str:
        return (env("EG_KERNEL_IMAGE") or DEFAULT_KERNEL_IMAGE).strip()
