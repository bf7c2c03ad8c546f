"""``/api/sessions`` and ``/api/sessions/{id}`` as Jupyter Server serves them, over the gateway's kernels.

``POST`` takes ``{"path", "type", "name"?, "kernel": {"name"? , "id"?}}``: an
existing session for the path is returned as it is; otherwise the named
kernel (``id``, which must exist) is used or a new one started
(``name``, default kernelspec if none), and the answer is 201 with a
``Location``.  ``PATCH`` renames, or moves the session to another kernel
(``kernel.id``) or a new one (``kernel.name``), shutting the previous kernel
down.  ``DELETE`` shuts the session's kernel down (204).

Sessions live in the kernel records (:mod:`gateway.http.sessionstore`): any replica serves a
session created through another, and a session ends with its kernel.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from gateway.kernels.errors import KernelNotFound
from gateway.kernels.records import RecordStore

from .errors import ApiHandler
from .sessionstore import Session, session_model

MAX_FIELD_LENGTH = 4096
"""Longest ``path``, ``name`` or ``type`` accepted: a session is kept in its kernel's record."""


class SessionsBase(ApiHandler):
    @property
    def records(self) -> RecordStore:
        return self.context.service.replica.records

    def alive(self, kernel_id: str) -> bool:
        return kernel_id in self.context.service

    def model(self, session: Session) -> dict[str, Any]:
        return session_model(session, self.context.service.get(session.kernel_id).model())

    def session(self, session_id: str) -> Session:
        session = self.context.sessions.find(self.records, session_id=session_id, alive=self.alive)
        if session is None:
            raise web.HTTPError(404, f"Session not found: {session_id[:100]}")
        return session

    def body(self) -> dict[str, Any]:
        body = self.get_json_body()
        if not isinstance(body, dict):
            raise web.HTTPError(400, "No JSON object provided.")
        if isinstance(body.get("notebook"), dict):  # the pre-2015 shape Jupyter Server still accepts
            body.setdefault("type", "notebook")
            body.setdefault("path", body["notebook"].get("path") or body["notebook"].get("name"))
        kernel = body.get("kernel")
        if kernel is not None and not isinstance(kernel, dict):
            raise web.HTTPError(400, "The session's kernel must be a JSON object.")
        for field in ("path", "type", "name"):
            if body.get(field) is not None and not isinstance(body[field], str):
                raise web.HTTPError(400, f"The session's {field} must be a string.")
            if len(body.get(field) or "") > MAX_FIELD_LENGTH:
                raise web.HTTPError(400, f"The session's {field} is longer than {MAX_FIELD_LENGTH} characters.")
        return body

    async def kernel_for(self, kernel: dict[str, Any] | None) -> str:
        """The id of the kernel a request names (``id``, which must exist), else a newly started one."""
        kernel = kernel or {}
        if kernel.get("id") is not None:
            kernel_id = str(kernel["id"])
            if kernel_id not in self.context.service:
                raise web.HTTPError(400, f"No such kernel: {kernel_id[:100]}")
            return kernel_id
        name = kernel.get("name")
        if name is not None and not isinstance(name, str):
            raise web.HTTPError(400, "The kernel's name must be a string.")
        started = await self.context.service.start_kernel(
            name=name or None, env=None, username_fallback=self.context.settings.gateway_user)
        return started.id


class SessionsHandler(SessionsBase):
    def get(self) -> None:
        sessions = self.context.sessions.all(self.records, self.alive)
        self.write_json([self.model(s) for s in sessions])

    async def post(self) -> None:
        body = self.body()
        for field in ("path", "type"):
            if body.get(field) is None:
                raise web.HTTPError(400, f"Missing field in JSON data: {field}")
        sessions = self.context.sessions
        session = sessions.find(self.records, path=body["path"], alive=self.alive)
        if session is None:
            kernel_id = await self.kernel_for(body.get("kernel"))
            session = await sessions.add(self.records, path=body["path"], name=body.get("name"), type=body["type"],
                                         kernel_id=kernel_id)
        self.set_header("Location", self.url("api", "sessions", session.id))
        self.write_json(self.model(session), 201)


class SessionHandler(SessionsBase):
    def get(self, session_id: str) -> None:
        self.write_json(self.model(self.session(session_id)))

    async def patch(self, session_id: str) -> None:
        session = self.session(session_id)
        body = self.body()
        previous = session.kernel_id
        changes: dict[str, Any] = {field: body[field] for field in ("path", "name", "type") if body.get(field) is not None}
        if body.get("kernel") is not None:
            changes["kernel_id"] = await self.kernel_for(body["kernel"])
        session = await self.context.sessions.update(self.records, session, **changes)
        if session.kernel_id != previous and previous in self.context.service:
            await self.context.service.shutdown(previous)
        self.write_json(self.model(session))

    async def delete(self, session_id: str) -> None:
        session = self.session(session_id)
        await self.context.sessions.remove(self.records, session)
        try:
            await self.context.service.shutdown(session.kernel_id)
        except KernelNotFound:
            pass  # it went away meanwhile: the session is gone either way
        self.set_status(204)
        self.finish()
