"""Kubernetes Events about kernels, written as controllers write them, never in the way of what they describe.

The kernel service tells :class:`EventRecorder` what happened (a launch failed, a kernel is
restarted because its pod died, an idle kernel is culled); the recorder writes a core/v1
``Event`` as client-go's event recorder does: ``involvedObject`` the object it is about,
``reason``, ``message``, ``type`` ``Normal`` or ``Warning``, ``source.component``
``kernelgate``, ``count`` with ``firstTimestamp`` and ``lastTimestamp``.  ``kubectl get
events`` and ``kubectl describe pod`` then tell a kernel's story.  Each event is written once
(``count`` 1): what the gateway reports about a kernel does not repeat word for word (a
restart says which of the allowed restarts it is), so there is nothing to aggregate, and the
gateway needs ``create`` on ``events`` only (the manifests' ``enterprise-gateway-controller``
ClusterRole).  Without it the gateway works the same, and says once that it writes no events.

Writing is best effort and bounded: :meth:`EventRecorder.record` only queues (at most
:data:`QUEUE_LIMIT` events; more are dropped and counted), one background task writes them,
each write bounded by :data:`WRITE_TIMEOUT`; a refused or failed write is counted, logged
(the first as a warning, the others at debug level) and never raised.  Messages are one line, cut to
:data:`MESSAGE_LIMIT` characters, with anything shaped like a credential (``token=...``)
hidden.

Made, started and stopped by the composition root (``gateway.app``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from gateway.aio import OwnedTasks, cancel_and_wait
from gateway.cluster.interface import Cluster

log = logging.getLogger("gateway.cluster.events")

COMPONENT = "kernelgate"
"""``source.component`` and ``reportingComponent`` of every event the gateway writes."""
QUEUE_LIMIT = 256
"""Events waiting to be written at most; more are dropped."""
WRITE_TIMEOUT = 5.0
"""Bound on one event's write."""
STOP_GRACE = 2.0
"""How long a stopping gateway still writes queued events."""
MESSAGE_LIMIT = 512

NORMAL = "Normal"
WARNING = "Warning"

_CREDENTIAL = re.compile(r"(?i)\b(token|password|passwd|secret|api[_-]?key|key)\s*([=:])\s*[^\s,;&\"']+")


@dataclass(frozen=True)
class ObjectRef:
    """``involvedObject``: what an event is about, as ``kubectl describe`` finds it (namespace, kind, name, uid)."""

    kind: str
    namespace: str
    name: str
    uid: str = ""
    api_version: str = "v1"

    def wire(self) -> dict[str, str]:
        ref = {"apiVersion": self.api_version, "kind": self.kind, "namespace": self.namespace, "name": self.name}
        if self.uid:
            ref["uid"] = self.uid
        return ref


@dataclass(frozen=True)
class _Pending:
    subject: ObjectRef
    type: str
    reason: str
    message: str
    moment: datetime


def clean_message(message: str) -> str:
    """``message`` as an event may carry it: its first line, credentials hidden, at most :data:`MESSAGE_LIMIT`."""
    line = (message.strip().splitlines() or [""])[0]
    line = _CREDENTIAL.sub(lambda m: f"{m.group(1)}{m.group(2)}[hidden]", line)
    return line if len(line) <= MESSAGE_LIMIT else line[: MESSAGE_LIMIT - 3] + "..."


class EventRecorder:
    """Writes the gateway's events in the background (see the module docstring).

    ``instance`` is ``reportingInstance`` and ``source.host`` (the replica's name);
    ``on_dropped`` is called for each event not written (the gateway counts them).
    """

    def __init__(self, cluster: Cluster, *, instance: str = "", on_dropped: Callable[[], None] | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._cluster = cluster
        self._instance = instance
        self._on_dropped = on_dropped or (lambda: None)
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._tasks = OwnedTasks("event recorder")
        self._writer: asyncio.Task[None] | None = None
        self._refusals_logged = False

    async def start(self) -> None:
        """Start writing (called by the app once the cluster connection is open)."""
        if self._writer is None:
            self._writer = self._tasks.spawn(self._write_all(), "write events")

    async def stop(self) -> None:
        """Write what is queued for at most :data:`STOP_GRACE` seconds, then stop (called as the gateway stops)."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if not self._queue.empty():
            try:
                await asyncio.wait_for(self._queue.join(), STOP_GRACE)
            except asyncio.TimeoutError:
                log.debug("%d events were not written before the gateway stopped", self._queue.qsize())
        await cancel_and_wait(writer)

    async def flush(self) -> None:
        """Return once every event queued so far was written or given up (tests, and a stopping gateway)."""
        await self._queue.join()

    def record(self, subject: ObjectRef, type_: str, reason: str, message: str) -> None:
        """Queue an event about ``subject``; never blocks, never raises (a full queue drops it)."""
        try:
            self._queue.put_nowait(_Pending(subject, type_, reason, clean_message(message), self._clock()))
        except asyncio.QueueFull:
            self._on_dropped()

    async def _write_all(self) -> None:
        while True:
            pending = await self._queue.get()
            try:
                await asyncio.wait_for(self._write(pending), WRITE_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._on_dropped()
                level = logging.DEBUG if self._refusals_logged else logging.WARNING
                self._refusals_logged = True
                log.log(level, "event %s about %s %s/%s not written: %s", pending.reason, pending.subject.kind,
                        pending.subject.namespace, pending.subject.name, error)
            finally:
                self._queue.task_done()

    async def _write(self, pending: _Pending) -> None:
        await self._cluster.create("events", self._event(pending), namespace=pending.subject.namespace)

    def _event(self, pending: _Pending) -> dict[str, Any]:
        """The core/v1 Event, named as client-go names them: ``<object name>.<unique hex>``."""
        moment = _timestamp(pending.moment)
        source: dict[str, str] = {"component": COMPONENT}
        if self._instance:
            source["host"] = self._instance
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{pending.subject.name}.{secrets.token_hex(8)}",
                         "namespace": pending.subject.namespace},
            "involvedObject": pending.subject.wire(),
            "reason": pending.reason,
            "message": pending.message,
            "type": pending.type,
            "source": source,
            "count": 1,
            "firstTimestamp": moment,
            "lastTimestamp": moment,
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
        }


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
