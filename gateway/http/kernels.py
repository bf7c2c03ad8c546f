"""Kernel routes: list, start, get, shut down, restart and interrupt kernels.

``POST /api/kernels`` takes ``{"name": kernelspec, "env": {...}}`` (both
optional) and answers 201 with the kernel model and a ``Location`` header
once the kernel answers; the checks and their statuses are the kernel
service's (400 bad env, 403 user or limits, 404 unknown kernelspec, 409 a
``KERNEL_ID`` in use, 5xx a failed launch).  ``KERNEL_USERNAME`` defaults to
the gateway's OS user, as in Enterprise Gateway.

``GET /api/kernels`` answers 403 unless listing is enabled
(``EG_LIST_KERNELS``, on by default here: Jupyter Server's gateway client
polls the list).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tornado import web

from gateway.kernels.errors import InvalidKernelRequest

from .errors import ApiHandler


class KernelsHandler(ApiHandler):
    def get(self) -> None:
        if not self.context.settings.list_kernels:
            raise web.HTTPError(403, "Listing kernels is disabled on this gateway (EG_LIST_KERNELS=False).")
        self.write_json([kernel.model() for kernel in self.context.service.list()])

    async def post(self) -> None:
        body = self.get_json_body()
        name, env = start_arguments(body)
        kernel = await self.context.service.start_kernel(
            name=name, env=env, username_fallback=self.context.settings.gateway_user)
        self.set_header("Location", self.url("api", "kernels", kernel.id))
        self.write_json(kernel.model(), 201)


def start_arguments(body: Any) -> tuple[str | None, Mapping[str, Any] | None]:
    """``(kernelspec name, env)`` of a start request body (a 400 for any other shape)."""
    if body is None:
        return None, None
    if not isinstance(body, dict):
        raise InvalidKernelRequest("The request body must be a JSON object like {\"name\": ..., \"env\": {...}}.")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidKernelRequest("The kernel's name must be a string.")
    env = body.get("env")
    if env is not None and not isinstance(env, dict):
        raise InvalidKernelRequest("The kernel's env must be a JSON object of strings.")
    return name or None, env


class KernelHandler(ApiHandler):
    def get(self, kernel_id: str) -> None:
        self.write_json(self.context.service.get(kernel_id).model())

    async def delete(self, kernel_id: str) -> None:
        self.context.service.get(kernel_id)  # 404 before anything else
        await self.context.service.shutdown(kernel_id)
        self.set_status(204)
        self.finish()


class KernelActionHandler(ApiHandler):
    """``POST .../restart`` (200 and the model, once the new pod answers) and ``POST .../interrupt`` (204)."""

    async def post(self, kernel_id: str, action: str) -> None:
        service = self.context.service
        if action == "restart":
            kernel = await service.restart(kernel_id)
            self.write_json(kernel.model())
        else:
            await service.interrupt(kernel_id)
            self.set_status(204)
            self.finish()
