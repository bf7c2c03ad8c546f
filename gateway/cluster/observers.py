"""Those an informer tells of its cache's changes: waiters and subscriptions.

A :class:`Waiter` wants the first state that satisfies its predicate, of one object
(by name) or of any object (of a namespace); :class:`Waiters` holds an informer's
waiters by the key they watch, so a change is offered only to those it concerns.
A :class:`Subscription` receives every change, in order.  The
:class:`~gateway.cluster.informer.Informer` owns both: it registers waiters from
``wait_for``, hands out subscriptions from ``subscribe``, offers each change it
applies, and ends them all when it stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.cluster.interface import Obj, WatchEvent

CacheKey = tuple[str, str]
"""``(namespace, name)``; the namespace is ``""`` for cluster-scoped objects."""

Predicate = Callable[[Any], bool]


class InformerStopped(Exception):
    """Raised to a waiter or subscriber still waiting when the informer stops."""


def key_of(obj: Obj) -> CacheKey:
    """The cache key of a wire-format object."""
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


@dataclass(eq=False)
class Waiter:
    """One ``wait_for`` call: its predicate, what it watches, and the future its caller awaits."""

    predicate: Predicate
    namespace: str | None
    name: str | None
    future: asyncio.Future[Obj | None]

    @property
    def key(self) -> CacheKey | None:
        """The key of the one object it watches; ``None`` when any object (of ``namespace``) will do."""
        return None if self.name is None else (self.namespace or "", self.name)

    def offer(self, obj: Obj | None) -> None:
        """Resolve the future when ``obj`` satisfies the predicate."""
        if self.future.done():
            return
        try:
            if self.predicate(obj):
                self.future.set_result(obj)
        except Exception as exc:  # a broken predicate fails its own waiter, not the informer
            self.future.set_exception(exc)

    def offer_cached(self, cache: Mapping[CacheKey, Obj]) -> None:
        """Offer the cache as it is: the watched object (or ``None``), else each object of ``namespace``."""
        if self.key is not None:
            self.offer(cache.get(self.key))
            return
        for obj in cache.values():
            if self.namespace is None or key_of(obj)[0] == self.namespace:
                self.offer(obj)
                if self.future.done():
                    return


class Waiters:
    """An informer's pending waiters, by the key of the object each watches."""

    def __init__(self) -> None:
        self._named: dict[CacheKey, set[Waiter]] = {}
        self._unnamed: set[Waiter] = set()

    def add(self, waiter: Waiter) -> None:
        if waiter.key is None:
            self._unnamed.add(waiter)
        else:
            self._named.setdefault(waiter.key, set()).add(waiter)

    def discard(self, waiter: Waiter) -> None:
        if waiter.key is None:
            self._unnamed.discard(waiter)
            return
        waiters = self._named.get(waiter.key)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._named[waiter.key]

    def __iter__(self) -> Iterator[Waiter]:
        return iter([*self._unnamed, *(w for ws in self._named.values() for w in ws)])

    def changed(self, key: CacheKey, current: Obj | None) -> None:
        """Offer the new state of ``key`` (``None``: deleted) to the waiters it concerns."""
        for waiter in list(self._named.get(key, ())):
            waiter.offer(current)
        if current is not None:
            for waiter in list(self._unnamed):
                if waiter.namespace is None or waiter.namespace == key[0]:
                    waiter.offer(current)

    def stop(self, reason: str) -> None:
        """Fail every waiter still waiting with :class:`InformerStopped` and forget them all."""
        for waiter in self:
            if not waiter.future.done():
                waiter.future.set_exception(InformerStopped(reason))
        self._named.clear()
        self._unnamed.clear()


@dataclass(eq=False)
class Subscription:
    """The changes an informer applies, in order, from the moment of subscribing.

    Use as ``async with informer.subscribe() as changes: async for event in changes``.
    Each item is a :class:`WatchEvent` (``ADDED``, ``MODIFIED`` or ``DELETED``; a
    ``DELETED`` event carries the last state the cache held).  Iteration ends when
    the informer stops or the subscription is closed.  Events queue without bound
    while nobody reads them: close a subscription you no longer read.
    """

    _on_close: Callable[[Subscription], None]
    _queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)
    closed: bool = False

    def put(self, event: WatchEvent) -> None:
        """Queue one change (called by the informer)."""
        if not self.closed:
            self._queue.put_nowait(event)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> WatchEvent:
        if self.closed and self._queue.empty():
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None:
            self.closed = True
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        """Stop receiving; a pending ``__anext__`` ends the iteration."""
        if not self.closed:
            self._queue.put_nowait(None)
            self._on_close(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


def expire(future: asyncio.Future[Any], timeout: float) -> None:
    """End a waiter's future with ``asyncio.TimeoutError`` (its ``timeout`` timer calls this)."""
    if not future.done():
        future.set_exception(asyncio.TimeoutError(f"no matching state within {timeout}s"))
