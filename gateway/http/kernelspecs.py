"""Kernelspec routes: ``GET /api/kernelspecs[?user=U]``, ``GET /api/kernelspecs/{name}``,
``GET /kernelspecs/{name}/{resource}`` (logos and other kernelspec files)."""

from __future__ import annotations

import asyncio
import mimetypes

from tornado import web

from .errors import ApiHandler


class KernelSpecsHandler(ApiHandler):
    """``{"default": name, "kernelspecs": {name: model}}``; with ``?user=``, only what that user may start."""

    async def get(self) -> None:
        specs = self.context.specs
        user = self.get_query_argument("user", None)
        base_url = self.context.settings.base_url
        # Kernelspecs are folders on disk, read again on every request: off the event loop.
        default, models = await asyncio.to_thread(lambda: (specs.default_name, specs.all(user, base_url=base_url)))
        self.write_json({"default": default, "kernelspecs": models})


class KernelSpecHandler(ApiHandler):
    """One kernelspec's model (404 when unknown or not allowed)."""

    async def get(self, name: str) -> None:
        model = await asyncio.to_thread(self.context.specs.get, name, base_url=self.context.settings.base_url)
        self.write_json(model)


class KernelSpecResourceHandler(ApiHandler):
    """A file of a kernelspec's folder, with its content type; never a path outside the folder (404)."""

    async def get(self, name: str, resource: str) -> None:
        path = await asyncio.to_thread(self.context.specs.resource_path, name, resource)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError:
            raise web.HTTPError(404, f"No resource {resource[:100]!r} in kernelspec {name[:100]!r}.") from None
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "max-age=3600")
        self.finish(data)
