"""The sessions Jupyter Server's ``/api/sessions`` serves: a path (notebook, console) mapped to a kernel.

A session lives in its kernel's record (:class:`~gateway.objects.record.RecordSession`), so every
replica serves every session, whichever replica created it, and a session ends with its kernel
(its record is deleted), as Jupyter Server's ``SessionManager`` drops rows whose kernel vanished.
Reads come from the records cache (no API call); creating, changing or deleting a session is one
write of the kernel's record under its ``resourceVersion`` (moving a session to another kernel:
two, the new kernel's first).  Another replica sees the change once its records watch delivers
it, normally within a fraction of a second.

A kernel keeps at most :data:`MAX_SESSIONS` sessions: one more is 409.

Paths are unique per replica's view: two clients creating a session for the same path at the
same moment through two replicas may each get one (Jupyter Server's gateway client keeps its
own sessions and does not rely on this API).

The HTTP session handlers call the :class:`SessionStore` with the kernel service's records.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from gateway.kernels.errors import KernelConflict, KernelNotFound
from gateway.kernels.records import RecordStore
from gateway.objects.record import KernelRecord, RecordSession

MAX_SESSIONS = 32
"""Sessions one kernel keeps.  Its record, a Secret that no API server stores past 1 MiB, holds them (each
field at most 4 KiB) beside the kernel's environment (at most 256 KiB); a notebook and a few consoles
share a kernel, not dozens."""

Alive = Callable[[str], bool]
"""Whether a kernel id is served now (listed): sessions of other kernels are not shown."""


@dataclass(frozen=True)
class Session:
    id: str
    path: str
    name: str | None
    type: str
    kernel_id: str


class SessionStore:
    """Sessions read from and written to the kernel records (see the module docstring); holds no state itself."""

    def all(self, records: RecordStore, alive: Alive) -> list[Session]:
        """Every session of a kernel served now."""
        return list(self._sessions(records, alive))

    def find(self, records: RecordStore, *, session_id: str | None = None, path: str | None = None,
             alive: Alive) -> Session | None:
        """The session with this id (or, without one, this path) on a kernel served now."""
        for session in self._sessions(records, alive):
            if (session.id == session_id) if session_id is not None else (session.path == path):
                return session
        return None

    async def add(self, records: RecordStore, *, path: str, name: str | None, type: str, kernel_id: str) -> Session:
        """A new session on kernel ``kernel_id`` (:class:`KernelNotFound` when its record is gone)."""
        session = Session(str(uuid.uuid4()), path, name, type, kernel_id)
        await self._write(records, kernel_id, session.id, RecordSession(path, name, type))
        return session

    async def update(self, records: RecordStore, session: Session, **changes: Any) -> Session:
        """``session`` with ``changes`` (``path``, ``name``, ``type``, ``kernel_id``) written to the records."""
        changed = replace(session, **changes)
        kept = RecordSession(changed.path, changed.name, changed.type)
        await self._write(records, changed.kernel_id, session.id, kept)
        if changed.kernel_id != session.kernel_id:
            await self._write(records, session.kernel_id, session.id, None, missing_ok=True)
        return changed

    async def remove(self, records: RecordStore, session: Session) -> None:
        """Delete the session (done when its kernel's record is gone already)."""
        await self._write(records, session.kernel_id, session.id, None, missing_ok=True)

    @staticmethod
    def _sessions(records: RecordStore, alive: Alive) -> Iterator[Session]:
        for record in records.all():
            if record.sessions and alive(record.kernel_id):
                for session_id, s in record.sessions.items():
                    yield Session(session_id, s.path, s.name, s.type, record.kernel_id)

    @staticmethod
    async def _write(records: RecordStore, kernel_id: str, session_id: str, session: RecordSession | None, *,
                     missing_ok: bool = False) -> None:
        """Set (``None``: delete) one session in the kernel's record."""
        def change(record: KernelRecord) -> KernelRecord | None:
            sessions = dict(record.sessions)
            if session is None:
                if sessions.pop(session_id, None) is None:
                    return None
            elif sessions.get(session_id) == session:
                return None
            else:
                if session_id not in sessions and len(sessions) >= MAX_SESSIONS:
                    raise KernelConflict(f"Kernel {kernel_id} has {len(sessions)} sessions, as many as one kernel "
                                         "keeps: delete one first.")
                sessions[session_id] = session
            return replace(record, sessions=sessions)

        if await records.modify(kernel_id, change) is None and not missing_ok:
            raise KernelNotFound(f"Kernel does not exist: {kernel_id}")


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
