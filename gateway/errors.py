"""The gateway's one error vocabulary: every refusal or failure a client can be answered with.

A :class:`GatewayError` carries three things, named the same everywhere:

- ``status``: the HTTP status the gateway answers with;
- ``reason``: a short, stable phrase for it (the HTTP reason phrase unless a subclass names a
  better one), the JSON ``reason`` of the answer, as Enterprise Gateway sends it;
- ``message``: one sentence for the user, the JSON ``message``.  Messages name the offending
  variable or kernel and never echo a client's (possibly huge or secret) value in full.

Each layer subclasses it for its own errors (``gateway.kernels.errors``,
``gateway.provisioner.errors``); the HTTP layer answers any of them the same way.  Errors of the
Kubernetes API are another vocabulary (``gateway.cluster.interface.ClusterError``, whose
``status`` and ``reason`` are the API server's) and never reach a client unmapped.

:class:`InvalidKernelRequest` and :class:`ForbiddenKernelRequest` live here because both the
object builders (``gateway.objects``, checking values as they place them into a pod) and the
kernel service (checking a request before launching) raise them.
"""

from __future__ import annotations

from http import HTTPStatus


class GatewayError(Exception):
    """A request could not be served; ``status``/``reason``/``message`` as the module docstring says."""

    status: int = 500

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.reason = reason or phrase(self.status)


class InvalidKernelRequest(GatewayError):
    """A value the client sent (a ``KERNEL_*`` variable, a username, the request body) cannot make a kernel.

    Raised before anything is created in the cluster, so answering 400 leaves nothing behind.
    """

    status = 400


class ForbiddenKernelRequest(InvalidKernelRequest):
    """A client value is well formed but refused by policy (a prohibited ``KERNEL_UID``/``KERNEL_GID``).

    Enterprise Gateway answers these with 403.
    """

    status = 403


def phrase(status: int) -> str:
    """The standard reason phrase of an HTTP status (``"Error"`` for one it does not know)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def shown(value: str, limit: int = 64) -> str:
    """A client-supplied value for a message: quoted, and cut short when long."""
    return repr(value if len(value) <= limit else value[:limit] + "...")
