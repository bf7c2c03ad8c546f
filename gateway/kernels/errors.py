"""Why the kernel service refused or failed a request.

Every error :class:`~gateway.kernels.service.KernelService` raises to its
callers is a :class:`KernelError` carrying the HTTP status the HTTP layer
answers with, a short ``reason`` and a ``message`` for the JSON error body
(``{"reason": ..., "message": ...}`` as Enterprise Gateway answers).  Messages
name the offending variable or kernel, never echo a client's (possibly huge or
secret) value.
"""

from __future__ import annotations

from http import HTTPStatus


class KernelError(Exception):
    """A kernel request could not be served; ``status`` is the HTTP status to answer with."""

    status: int = 500

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.reason = reason or _phrase(self.status)


class KernelNotFound(KernelError):
    """No kernel with this id is known to this gateway."""

    status = 404


class UnknownKernelSpec(KernelError):
    """No kernelspec of this name, or one the allow-list hides (Enterprise Gateway answers 404 for both)."""

    status = 404


class InvalidKernelRequest(KernelError):
    """The client's request cannot start a kernel: a bad env name or value, a bad ``KERNEL_ID``..."""

    status = 400


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


def shown(value: str, limit: int = 64) -> str:
    """A client-supplied value for a message: quoted, and cut short when long."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
