"""Errors the object builders raise, split by whose mistake it is.

The HTTP layer turns :class:`InvalidKernelRequest` (and its subclass
:class:`ForbiddenKernelRequest`) into a client error with ``status_code`` and
the message as the JSON ``reason``; :class:`TemplateError` is the operator's
mistake in a kernelspec's ``kernel-pod.yaml`` and becomes a server error.
"""

from __future__ import annotations


class InvalidKernelRequest(ValueError):
    """A value the client sent (``KERNEL_*`` env, username) cannot make a valid kernel pod.

    Raised while building objects, before anything is created in the cluster,
    so answering 400 leaves nothing behind.
    """

    status_code = 400


class ForbiddenKernelRequest(InvalidKernelRequest):
    """A client value is well formed but refused by policy (a prohibited ``KERNEL_UID``/``KERNEL_GID``).

    Enterprise Gateway answers these with 403.
    """

    status_code = 403


class TemplateError(ValueError):
    """A kernel-pod template cannot be used: bad YAML, a kind we do not create, no Pod, no container."""
