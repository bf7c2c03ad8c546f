"""Errors the object builders raise, split by whose mistake it is.

A client value that cannot make a valid pod is an :class:`~gateway.errors.InvalidKernelRequest`
(400), one refused by policy a :class:`~gateway.errors.ForbiddenKernelRequest` (403): the
gateway's one error vocabulary (``gateway.errors``), raised before anything is created.
:class:`TemplateError` is the operator's mistake in a kernelspec's ``kernel-pod.yaml``.
"""

from __future__ import annotations

from gateway.errors import ForbiddenKernelRequest, InvalidKernelRequest

__all__ = ["ForbiddenKernelRequest", "InvalidKernelRequest", "TemplateError"]


class TemplateError(ValueError):
    """A kernel-pod template cannot be used: bad YAML, a kind we do not create, no Pod, no container."""
