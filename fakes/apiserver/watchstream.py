"""Watch responses: a chunked stream of JSON lines ``{"type": ..., "object": ...}``.

:mod:`fakes.apiserver.server` answers ``?watch=1`` with a :class:`Stream`.  As the real
server does (``k8s.io/apiserver/pkg/endpoints/handlers/watch.go``), the
response is ``200`` with one JSON event per chunk; an error once the stream has
begun — including ``410 Expired`` for a resourceVersion older than the server
keeps, which the watch cache reports as an event rather than an HTTP status —
goes out as an ``ERROR`` event whose object is the ``Status``, and ends it.
The stream ends when ``timeoutSeconds`` pass, when the cluster ends the watch,
when the client disconnects, or when the server stops.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from tornado import iostream, web

from fakes.apiserver import tables
from fakes.apiserver.paths import ResourcePath
from gateway.cluster.interface import BadRequest, Cluster, ClusterError, Gone, WatchEvent
from gateway.cluster.status import to_status


class OpenWatches:
    """The server's open streams, so that stopping the server ends them and callers can wait
    until every stream a client abandoned has been cleaned up."""

    def __init__(self) -> None:
        self._streams: set[Stream] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, stream: Stream) -> None:
        self._streams.add(stream)
        self._idle.clear()

    def discard(self, stream: Stream) -> None:
        self._streams.discard(stream)
        if not self._streams:
            self._idle.set()

    async def idle(self) -> None:
        """Return once no stream is open."""
        await self._idle.wait()

    async def close_all(self, timeout: float = 5.0) -> None:
        """End every open stream and wait (at most ``timeout`` seconds) until each has sent its last chunk."""
        streams = list(self._streams)
        for stream in streams:
            stream.cancel()
        if streams:
            await asyncio.wait([asyncio.ensure_future(s.ended.wait()) for s in streams], timeout=timeout)

    def __len__(self) -> int:
        return len(self._streams)


def _timeout(query: dict[str, str]) -> float | None:
    value = query.get("timeoutSeconds")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise BadRequest(f'invalid value for timeoutSeconds: "{value}"') from None


class Stream:
    """One watch response, written by :meth:`run` on ``handler``'s connection."""

    def __init__(self, handler: web.RequestHandler, registry: OpenWatches) -> None:
        self._handler = handler
        self._registry = registry
        self._pump: asyncio.Task[None] | None = None
        self._cancelled = False
        self.ended = asyncio.Event()

    def cancel(self) -> None:
        """End the stream (client gone, or server stopping)."""
        self._cancelled = True
        if self._pump is not None:
            self._pump.cancel()

    async def run(self, cluster: Cluster, target: ResourcePath, query: dict[str, str], accept: str) -> None:
        """Open the watch and stream its events until it ends.

        Errors met while opening the watch (Forbidden, a bad parameter, an
        injected fault) are raised to the caller, which answers them with an
        HTTP status as the real server's filters do; Gone, and errors after the
        stream began, become ``ERROR`` events.
        """
        events: Any
        try:
            events = cluster.watch(
                target.resource.plural,
                namespace=target.namespace,
                label_selector=query.get("labelSelector") or None,
                field_selector=query.get("fieldSelector") or None,
                resource_version=query.get("resourceVersion") or None,
                timeout_seconds=_timeout(query),
                allow_bookmarks=query.get("allowWatchBookmarks") in ("1", "true"),
            )
        except Gone as gone:
            events = _failed(gone)
        # The cluster authorizes and checks the version when iteration starts, before its
        # first real wait; one turn of the loop lets that happen before we commit to a 200.
        first = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0)
        if first.done() and not first.cancelled():
            refused = first.exception()
            if isinstance(refused, ClusterError) and not isinstance(refused, Gone):
                await events.aclose()
                raise refused
        as_table = tables.wants_table(accept)
        include = query.get("includeObject", "Metadata")
        self._registry.add(self)
        try:
            self._pump = asyncio.ensure_future(self._send_all(first, events, target, as_table, include))
            if self._cancelled:
                self._pump.cancel()
            try:
                await self._pump
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
            if not self._handler._finished:
                self._handler.finish()
        finally:
            self._registry.discard(self)
            if not first.done():
                first.cancel()
            await events.aclose()
            self.ended.set()

    async def _send_all(
        self, first: asyncio.Future[WatchEvent], events: Any, target: ResourcePath, as_table: bool, include: str
    ) -> None:
        handler = self._handler
        handler.set_status(200)
        handler.set_header("Content-Type", "application/json")
        handler.set_header("Cache-Control", "no-cache, private")
        try:
            await handler.flush()  # headers now: clients wait for them before reading events
            try:
                event = await first
                while True:
                    handler.write(_line(event, target, as_table, include))
                    await handler.flush()
                    event = await events.__anext__()
            except StopAsyncIteration:
                return
            except ClusterError as err:
                handler.write(json.dumps({"type": "ERROR", "object": to_status(err)}) + "\n")
                await handler.flush()
        except iostream.StreamClosedError:
            return


async def _failed(err: ClusterError) -> AsyncIterator[WatchEvent]:
    """A watch that fails on its first read: a Gone found while opening still goes out as an event."""
    raise err
    yield  # pragma: no cover - makes this an async generator


def _line(event: WatchEvent, target: ResourcePath, as_table: bool, include: str) -> str:
    obj = event.object
    if as_table and event.type in ("ADDED", "MODIFIED", "DELETED"):
        obj = tables.to_table(target.resource.plural, [obj], include_object=include)
    return json.dumps({"type": event.type, "object": obj}, separators=(",", ":")) + "\n"
