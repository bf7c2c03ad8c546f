"""Why the kernel service refused or failed a request.

Every error :class:`~gateway.kernels.service.KernelService` raises to its
callers is a :class:`KernelError` (or :class:`InvalidKernelRequest`), a
:class:`gateway.errors.GatewayError` with its ``status``, ``reason`` and
``message`` for the JSON error body (``{"reason": ..., "message": ...}`` as
Enterprise Gateway answers).
"""

from __future__ import annotations

from gateway.errors import ForbiddenKernelRequest, GatewayError, InvalidKernelRequest, shown

__all__ = [
    "ForbiddenKernelRequest", "GatewayStopping", "InvalidKernelRequest", "KernelConflict", "KernelError",
    "KernelLaunchFailed", "KernelLimitReached", "KernelNotFound", "UnknownKernelSpec", "UserNotAuthorized", "shown",
]


class KernelError(GatewayError):
    """A kernel request could not be served (500 unless a subclass or the raiser says otherwise)."""


class KernelNotFound(KernelError):
    """No kernel with this id is known to this gateway."""

    status = 404


class UnknownKernelSpec(KernelError):
    """No kernelspec of this name, or one the allow-list hides (Enterprise Gateway answers 404 for both)."""

    status = 404


class UserNotAuthorized(KernelError):
    """``KERNEL_USERNAME`` is not allowed to use this kernelspec (global or per-kernelspec user lists)."""

    status = 403


class KernelLimitReached(KernelError):
    """``EG_MAX_KERNELS`` or ``EG_MAX_KERNELS_PER_USER`` would be exceeded (pending starts count)."""

    status = 403


class KernelConflict(KernelError):
    """The request conflicts with the kernel's state: a ``KERNEL_ID`` already in use, a kernel shutting down."""

    status = 409


class KernelLaunchFailed(KernelError):
    """The provisioner could not launch (or relaunch) the kernel; ``status`` is the launch error's."""


class GatewayStopping(KernelError):
    """The gateway is stopping: it starts no kernel, and operations its stop cancelled end with this."""

    status = 503

    def __init__(self, message: str = "The gateway is shutting down.") -> None:
        super().__init__(message)
