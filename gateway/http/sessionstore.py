"""The sessions Jupyter Server's ``/api/sessions`` serves: a path (notebook, console) mapped to a kernel.

In memory, one per gateway: sessions are a convenience for clients that
talk to the gateway directly (Jupyter Server's gateway client keeps its own).
A session whose kernel is gone is dropped when next read, as Jupyter
Server's ``SessionManager`` culls rows whose kernel vanished.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Session:
    id: str
    path: str
    name: str | None
    type: str
    kernel_id: str


class SessionStore:
    """Sessions by id (the HTTP session handlers create, read, update and delete them)."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}

    def add(self, *, path: str, name: str | None, type: str, kernel_id: str) -> Session:
        session = Session(str(uuid.uuid4()), path, name, type, kernel_id)
        self._sessions[session.id] = session
        return session

    def find(self, *, session_id: str | None = None, path: str | None = None,
             alive: Callable[[str], bool] = lambda _: True) -> Session | None:
        """The session with this id (or path) whose kernel is ``alive``; dead ones are dropped."""
        self.prune(alive)
        if session_id is not None:
            return self._sessions.get(session_id)
        return next((s for s in self._sessions.values() if s.path == path), None)

    def all(self, alive: Callable[[str], bool]) -> list[Session]:
        self.prune(alive)
        return list(self._sessions.values())

    def remove(self, session_id: str) -> Session | None:
        return self._sessions.pop(session_id, None)

    def prune(self, alive: Callable[[str], bool]) -> None:
        for session in list(self._sessions.values()):
            if not alive(session.kernel_id):
                del self._sessions[session.id]


def session_model(session: Session, kernel_model: dict[str, Any]) -> dict[str, Any]:
    """A session as Jupyter Server's ``SessionManager.get_session`` returns it."""
    return {
        "id": session.id,
        "path": session.path,
        "name": session.name,
        "type": session.type,
        "kernel": kernel_model,
        "notebook": {"path": session.path, "name": session.name},
    }
