"""Watch streams over the store: a retained event window per resource and the watchers fed from it.

The store records every write with :meth:`EventLog.record`; a
:class:`Watch` opened from a resourceVersion replays the retained events
after it and then receives live ones.  Behaviour follows the API server's
watch cache (``k8s.io/apiserver/pkg/storage/cacher``): events in
resourceVersion order; an object that stops matching the watcher's selector
arrives as ``DELETED`` (its previous state at the event's version), one that
starts matching as ``ADDED`` (``cache_watcher.go`` ``convertToWatchEvent``);
a version older than the window is ``410 Expired``
(``watch_cache.go`` ``getAllEventsSinceLocked``).

Everything here runs on the event loop that owns the store; nothing is
thread-safe.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fakes.state.objects import clone
from gateway.cluster.interface import Gone, WatchEvent

Predicate = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Change:
    """One stored write: ``obj`` is the state after it (for DELETED: the last state at the deletion's
    version), ``old`` the state before (``None`` for ADDED)."""

    rv: int
    type: str
    obj: dict[str, Any]
    old: dict[str, Any] | None


def _view(change: Change, matches: Predicate) -> WatchEvent | None:
    """What a watcher with predicate ``matches`` sees of ``change`` (``convertToWatchEvent``)."""
    now = change.type != "DELETED" and matches(change.obj)
    before = change.old is not None and matches(change.old)
    if now and not before:
        return WatchEvent("ADDED", clone(change.obj))
    if now and before:
        return WatchEvent("MODIFIED", clone(change.obj))
    if before:
        if change.type == "DELETED":
            return WatchEvent("DELETED", clone(change.obj))
        gone = clone(change.old or {})
        gone["metadata"]["resourceVersion"] = str(change.rv)
        return WatchEvent("DELETED", gone)
    return None


_END = object()
PRE_TIMEOUT = 2.0
"""Seconds before a watch's deadline when the watch cache sends its last bookmark (``nextBookmarkTime``)."""


class Watch:
    """An open watch: an async iterator of :class:`WatchEvent`.

    Created by ``Store.watch``; ends when ``aclose()`` is called, when its
    timeout passes, or when the store drops it (a fault).  With bookmarks
    asked for, the watch behaves as the API server's watch cache does
    (k8s.io/apiserver pkg/storage/cacher ``cacheWatcher.nextBookmarkTime`` and
    ``dispatchEvents``): a ``BOOKMARK`` is due every ``bookmark_interval``
    seconds and :data:`PRE_TIMEOUT` seconds before the deadline (when that is
    still ahead), and it is sent only when writes to the resource (matching or
    not) have moved the resource's version past the one the watch started
    from; it carries the resource's newest version.  A quiet resource gets no
    bookmark at all.  (The real cache fires on one-second buckets, so it may send
    a second bookmark of the same version just after the first.)
    """

    def __init__(
        self,
        resource: str,
        kind: str,
        api_version: str,
        matches: Predicate,
        current_rv: Callable[[], int],
        *,
        timeout_seconds: float | None,
        allow_bookmarks: bool,
        bookmark_interval: float,
        on_close: Callable[[Watch], None],
    ) -> None:
        self.resource = resource
        self._kind = kind
        self._api_version = api_version
        self._matches = matches
        self._current_rv = current_rv
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._closed = False
        self._finished = False
        self._allow_bookmarks = allow_bookmarks
        self._bookmark_interval = bookmark_interval
        # The timeout runs from the request, as the server's does (time.monotonic, like the loop's clock).
        self._deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        self._on_close = on_close
        self._start_rv = current_rv()  # the version the watch started from (set by ``start_at``)
        self._resource_rv = self._start_rv  # the newest version written to the resource (matching or not)
        self._next_bookmark = self._bookmark_due(time.monotonic()) if allow_bookmarks else None

    # ---------------------------------------------------------------- fed by the store

    def offer(self, change: Change) -> None:
        """Queue what this watcher sees of ``change`` (nothing when it does not match)."""
        if self._closed:
            return
        self._resource_rv = max(self._resource_rv, change.rv)
        if change.rv <= self._start_rv:
            # cache_watcher.go process: only events newer than the version the watch started from (a watch from
            # a version the store had not reached yet skips the writes up to it).
            return
        event = _view(change, self._matches)
        if event is not None:
            self._queue.put_nowait(event)

    def start_at(self, rv: int) -> None:
        """The version the watch starts from: the request's (then each replayed change's), or the current
        one for a watch without."""
        self._start_rv = rv
        self._resource_rv = max(self._resource_rv, rv)

    def offer_initial(self, objects: Iterable[dict[str, Any]]) -> None:
        """Queue synthetic ADDED events for the objects that exist now (a watch without version)."""
        for obj in objects:
            if self._matches(obj):
                self._queue.put_nowait(WatchEvent("ADDED", clone(obj)))

    def end(self) -> None:
        """End the stream from the server side: queued events are still delivered, then it stops."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(_END)
            self._on_close(self)

    # ---------------------------------------------------------------- consumed by the client

    def __aiter__(self) -> Watch:
        return self

    def _bookmark_due(self, now: float) -> float | None:
        """When the next bookmark is due (``nextBookmarkTime``), or ``None`` when none is."""
        due = now + self._bookmark_interval
        if self._deadline is not None and self._deadline - PRE_TIMEOUT < due:
            due = self._deadline - PRE_TIMEOUT
        return due if due >= now else None

    def _bookmark(self) -> WatchEvent | None:
        """The bookmark due now, or ``None`` when the resource has not moved since the watch started
        (``cacheWatcher`` passes on only events newer than its starting version)."""
        self._next_bookmark = self._bookmark_due(time.monotonic())
        if self._resource_rv <= self._start_rv:
            return None
        return WatchEvent("BOOKMARK", {
            "kind": self._kind, "apiVersion": self._api_version,
            "metadata": {"resourceVersion": str(self._resource_rv)},
        })

    async def __anext__(self) -> WatchEvent:
        if self._finished:
            raise StopAsyncIteration
        while True:
            now = time.monotonic()
            wait = None if self._deadline is None else max(0.0, self._deadline - now)
            if self._next_bookmark is not None:
                until_bookmark = max(0.0, self._next_bookmark - now)
                wait = until_bookmark if wait is None else min(wait, until_bookmark)
            try:
                if not self._queue.empty():
                    item = self._queue.get_nowait()
                elif wait is None:
                    item = await self._queue.get()
                else:
                    item = await asyncio.wait_for(self._queue.get(), wait)
            except asyncio.TimeoutError:
                if not self._queue.empty():
                    continue  # an event came as the wait ended: it goes before any bookmark of its version
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    self._finish()
                    raise StopAsyncIteration from None
                bookmark = self._bookmark()
                if bookmark is not None:
                    return bookmark
                continue
            if item is _END:
                self._finish()
                raise StopAsyncIteration
            return item

    def _finish(self) -> None:
        self._finished = True
        if not self._closed:
            self._closed = True
            self._on_close(self)

    async def aclose(self) -> None:
        """Stop the watch early; further iteration ends at once."""
        self._finish()
        self._drain()

    def close(self) -> None:
        """Synchronous :meth:`aclose`, for cleanup outside a coroutine."""
        self._finish()
        self._drain()

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    @property
    def closed(self) -> bool:
        return self._closed


class EventLog:
    """The last ``window`` changes of each resource, and the watches fed from them.

    Owned by the store: it calls :meth:`record` for every write and
    :meth:`open` for every watch request.
    """

    def __init__(self, window: int, bookmark_interval: float = 60.0) -> None:
        self._window = window
        self._bookmark_interval = bookmark_interval
        self._changes: dict[str, deque[Change]] = {}
        self._full: set[str] = set()  # resources whose window has dropped events
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()

    def record(self, resource: str, change: Change) -> None:
        """Retain ``change`` and deliver it to the open watches on ``resource``."""
        log = self._changes.setdefault(resource, deque())
        log.append(change)
        if len(log) > self._window:
            log.popleft()
            self._full.add(resource)
        for watch in list(self._watches):
            if watch.resource == resource:
                watch.offer(change)

    def oldest_available(self, resource: str) -> int:
        """The oldest version a watch on ``resource`` may start from (``watch_cache.go``: the oldest
        retained event's version minus one, once the window has dropped anything)."""
        if resource not in self._full:
            return 0
        return self._changes[resource][0].rv - 1

    def open(
        self,
        resource: str,
        kind: str,
        api_version: str,
        matches: Predicate,
        since: int | None,
        current: Iterable[dict[str, Any]],
        current_rv: Callable[[], int],
        *,
        timeout_seconds: float | None = None,
        allow_bookmarks: bool = False,
    ) -> Watch:
        """Open a watch from version ``since`` (``None``: ADDED for ``current``, then live changes).

        Raises :class:`Gone` when a change after ``since`` has already left the window.
        """
        oldest = self.oldest_available(resource)
        if since is not None and since < oldest:
            # watch_cache.go getAllEventsSinceLocked: "too old resource version: %d (%d)", requested, oldest-1
            raise Gone(f"too old resource version: {since} ({oldest})")
        watch = Watch(
            resource, kind, api_version, matches, current_rv,
            timeout_seconds=timeout_seconds, allow_bookmarks=allow_bookmarks,
            bookmark_interval=self._bookmark_interval, on_close=self._forget,
        )
        watch.start_at(current_rv() if since is None else since)
        if since is None:
            watch.offer_initial(current)
        else:
            for change in self._changes.get(resource, ()):
                if change.rv > since:
                    watch.offer(change)
                    watch.start_at(change.rv)  # processInterval: replayed events move the start, seen or not
        self._watches.add(watch)
        return watch

    def _forget(self, watch: Watch) -> None:
        self._watches.discard(watch)

    def drop(self, resource: str | None = None) -> int:
        """End the open watches (on ``resource`` only, when given); return how many."""
        dropped = [w for w in list(self._watches) if resource is None or w.resource == resource]
        for watch in dropped:
            watch.end()
        return len(dropped)

    def open_count(self, resource: str | None = None) -> int:
        """How many watches are open (used by tests that check watches do not leak)."""
        return sum(1 for w in list(self._watches) if resource is None or w.resource == resource)
