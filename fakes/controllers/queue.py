"""A controller's work queue: the keys of objects to reconcile, each in line at most once.

The semantics of client-go's ``workqueue``: a key added while it waits is not added twice; a key
added while a worker processes it is processed once more after :meth:`WorkQueue.done`; a key
that failed comes back after a per-key back-off (:meth:`WorkQueue.retry`) until it succeeds
(:meth:`WorkQueue.forget`).  Informer event handlers add keys; each controller's worker
(``fakes.controllers.controller``) takes them.
"""

from __future__ import annotations

import asyncio
from collections import deque

from gateway.aio import Backoff

Key = tuple[str, str]
"""``(namespace, name)`` of the object to reconcile."""


class QueueShutDown(Exception):
    """Raised by :meth:`WorkQueue.get` once the queue is shut down."""


class WorkQueue:
    """Keys waiting for a worker, with de-duplication, delayed adds and per-key retry back-off."""

    def __init__(self, *, retry_base: float = 0.05, retry_cap: float = 30.0) -> None:
        self._line: deque[Key] = deque()
        self._waiting: set[Key] = set()  # in the line
        self._processing: set[Key] = set()  # taken by a worker, not yet done
        self._again: set[Key] = set()  # added while processing: back in line once done
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._failures: dict[Key, Backoff] = {}
        self._retry_base, self._retry_cap = retry_base, retry_cap
        self._ready = asyncio.Event()
        self._shut_down = False

    def __len__(self) -> int:
        return len(self._line)

    def add(self, key: Key) -> None:
        """Ask for ``key`` to be reconciled (at once, or after the run in progress)."""
        if self._shut_down or key in self._waiting:
            return
        if key in self._processing:
            self._again.add(key)
            return
        self._waiting.add(key)
        self._line.append(key)
        self._ready.set()

    def add_after(self, key: Key, delay: float) -> None:
        """Add ``key`` in ``delay`` seconds (a deadline to check, a failure to retry); an earlier timer wins."""
        if self._shut_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        pending = self._timers.get(key)
        if pending is not None:
            if pending.when() <= loop.time() + delay:
                return
            pending.cancel()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def retry(self, key: Key) -> float:
        """``key`` failed: add it again after its next back-off; return the delay."""
        backoff = self._failures.setdefault(key, Backoff(self._retry_base, self._retry_cap))
        delay = backoff.fail()
        self.add_after(key, delay)
        return delay

    def forget(self, key: Key) -> None:
        """``key`` succeeded: its next failure starts from the shortest back-off."""
        self._failures.pop(key, None)

    async def get(self) -> Key:
        """The next key to process; the caller must call :meth:`done` with it.  :class:`QueueShutDown` at the end."""
        while not self._line:
            if self._shut_down:
                raise QueueShutDown()
            self._ready.clear()
            await self._ready.wait()
        key = self._line.popleft()
        self._waiting.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: Key) -> None:
        """The worker finished ``key``; a key added meanwhile goes back in line."""
        self._processing.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)

    def shut_down(self) -> None:
        """Drop pending timers and wake the workers, whose :meth:`get` then raises :class:`QueueShutDown`."""
        self._shut_down = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._line.clear()
        self._waiting.clear()
        self._ready.set()
