"""A watch-fed cache of one kind of object: the gateway's view of its kernel pods.

One :class:`Informer` lists the objects once, then keeps a single watch open and
applies its events to a local cache.  Everything the gateway asks about its
pods (is this kernel's pod running? did it die?) is answered from that cache,
so an idle gateway costs the API server one open watch, whatever the number of
kernels.  Waiting for a pod to reach a state is awaiting a future that the
next matching event resolves, never polling.

The protocol is the one every Kubernetes controller follows
(client-go ``tools/cache/reflector.go``): list, watch from the list's
``resourceVersion``; when the watch ends, watch again from the last version
seen; when the server answers 410 Gone (the version fell out of its window),
list again and replace the cache, reporting what changed meanwhile.

It works over any :class:`~gateway.cluster.interface.Cluster`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.cluster.interface import Cluster, ClusterError, Gone, Obj, WatchEvent
from gateway.cluster.resources import resource_type

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""``(namespace, name)``; the namespace is ``""`` for cluster-scoped objects."""

Predicate = Callable[[Any], bool]


class InformerStopped(Exception):
    """Raised to a waiter or subscriber still waiting when the informer stops."""


def key_of(obj: Obj) -> Key:
    """The cache key of a wire-format object."""
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class Backoff:
    """Bounded exponential backoff with jitter, for retries after a failure.

    The n-th consecutive failure waits between half and all of
    ``min(cap, base * 2**(n-1))`` seconds (client-go's jittered backoff), so a
    fleet of gateways restarted together does not hit the API server in step.
    """

    def __init__(self, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()

    def fail(self) -> float:
        """Record a failure; return how long to wait before the next attempt."""
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** (self.failures - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        """Record a success: the next failure starts from ``base`` again."""
        self.failures = 0


@dataclass(eq=False)
class _Waiter:
    predicate: Predicate
    namespace: str | None
    name: str | None
    future: asyncio.Future[Obj | None]

    def offer(self, obj: Obj | None) -> None:
        """Resolve the future when ``obj`` satisfies the predicate."""
        if self.future.done():
            return
        try:
            if self.predicate(obj):
                self.future.set_result(obj)
        except Exception as exc:  # a broken predicate fails its own waiter, not the informer
            self.future.set_exception(exc)


@dataclass(eq=False)
class Subscription:
    """The changes an informer applies, in order, from the moment of subscribing.

    Use as ``async with informer.subscribe() as changes: async for event in changes``.
    Each item is a :class:`WatchEvent` (``ADDED``, ``MODIFIED`` or ``DELETED``; a
    ``DELETED`` event carries the last state the cache held).  Iteration ends when
    the informer stops or the subscription is closed.  Events queue without bound
    while nobody reads them: close a subscription you no longer read.
    """

    _informer: Informer
    _queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)
    closed: bool = False

    def _put(self, event: WatchEvent | None) -> None:
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
            self._informer._subscriptions.discard(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class Informer:
    """The cache of ``resource`` objects matching the selectors, kept current by a watch.

    Created and started by the component that owns the gateway's view of the
    cluster (the kernel service), stopped at shutdown.  ``resync_timeout`` is how
    long one watch request stays open (the server's ``timeoutSeconds``) before the
    informer renews it from the last version seen; renewals are the only calls an
    idle informer makes.

    Objects handed out (``get``, ``items``, ``wait_for``, events) are the cached
    objects themselves: treat them as read-only, as client-go asks of its
    informers' caches.
    """

    def __init__(
        self,
        cluster: Cluster,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_timeout: float = 300.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._cluster = cluster
        self._type = resource_type(resource)
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_timeout = resync_timeout
        self._backoff = backoff or Backoff()
        self._cache: dict[Key, Obj] = {}
        self._resource_version = ""
        self._synced = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._pause: asyncio.Future[None] | None = None  # a backoff in progress; stop() cuts it short
        self._named: dict[Key, set[_Waiter]] = {}
        self._unnamed: set[_Waiter] = set()
        self._subscriptions: set[Subscription] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """List the objects, fill the cache, then keep it current in a background task.

        Returns once the cache is filled (``has_synced``).  An error of that first
        list (Forbidden for missing RBAC, say) is raised here and nothing is left
        running; later errors are retried with backoff.
        """
        if self._task is not None or self._stopping:
            raise RuntimeError("an informer starts once")
        await self._relist()
        self._task = asyncio.create_task(self._run(), name=f"informer {self.resource}")

    async def stop(self) -> None:
        """End the watch task; pending waiters get :class:`InformerStopped`, subscriptions end."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            # The flag ends the loop even if a cancellation gets lost in a watch stream
            # that swallows it (Python 3.11's asyncio.wait_for can, when a result races it).
            if self._pause is not None and not self._pause.done():
                self._pause.set_result(None)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for waiter in [*self._unnamed, *(w for ws in self._named.values() for w in ws)]:
            if not waiter.future.done():
                waiter.future.set_exception(InformerStopped(f"the {self.resource} informer stopped"))
        self._named.clear()
        self._unnamed.clear()
        for sub in list(self._subscriptions):
            sub.close()

    async def __aenter__(self) -> Informer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ reading

    @property
    def has_synced(self) -> bool:
        """True once the first list has filled the cache."""
        return self._synced

    @property
    def resource_version(self) -> str:
        """The last resourceVersion the cache reflects (the next watch starts there)."""
        return self._resource_version

    def get(self, namespace: str | None, name: str) -> Obj | None:
        """The cached object, or ``None`` when the cluster has none by that name."""
        return self._cache.get((namespace or "", name))

    def items(self) -> list[Obj]:
        """Every cached object."""
        return list(self._cache.values())

    # ------------------------------------------------------------------ waiting

    async def wait_for(
        self,
        predicate: Predicate,
        *,
        namespace: str | None = None,
        name: str | None = None,
        timeout: float,
    ) -> Obj | None:
        """The first state satisfying ``predicate``, checked now and on every change.

        With ``name``: ``predicate`` sees that object, or ``None`` while it does not
        exist (never created, or deleted), so ``wait_for(lambda pod: pod is None, ...)``
        waits for a deletion and returns ``None``.  Without ``name``: ``predicate``
        sees each existing object (in ``namespace`` when given) and the first match
        is returned.  Called by kernel launch to await its pod's readiness or
        failure.  Raises ``asyncio.TimeoutError`` after ``timeout`` seconds, whatever
        the predicate raises, or :class:`InformerStopped`.
        """
        if name is not None and self._type.namespaced and namespace is None:
            raise ValueError(f"waiting for {self.resource} by name needs a namespace")
        if self._stopping:
            raise InformerStopped(f"the {self.resource} informer stopped")
        loop = asyncio.get_running_loop()
        waiter = _Waiter(predicate, namespace, name, loop.create_future())
        if self._synced:
            self._offer_current(waiter)
        if waiter.future.done():
            return waiter.future.result()
        if name is None:
            self._unnamed.add(waiter)
        else:
            self._named.setdefault((namespace or "", name), set()).add(waiter)
        # A timer rather than asyncio.wait_for: awaiting the future itself keeps a
        # cancellation of the caller from ever being lost to a result arriving at once.
        deadline = loop.call_later(timeout, _expire, waiter.future, timeout)
        try:
            return await waiter.future
        finally:
            deadline.cancel()
            self._forget(waiter)

    def subscribe(self, *, replay: bool = False) -> Subscription:
        """Every change from now on; with ``replay``, first an ``ADDED`` for each cached object."""
        sub = Subscription(self)
        if replay:
            for obj in self._cache.values():
                sub._put(WatchEvent("ADDED", obj))
        self._subscriptions.add(sub)
        return sub

    def _forget(self, waiter: _Waiter) -> None:
        if waiter.name is None:
            self._unnamed.discard(waiter)
            return
        key = (waiter.namespace or "", waiter.name)
        waiters = self._named.get(key)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._named[key]

    def _offer_current(self, waiter: _Waiter) -> None:
        if waiter.name is not None:
            waiter.offer(self._cache.get((waiter.namespace or "", waiter.name)))
            return
        for obj in self._cache.values():
            if waiter.namespace is None or key_of(obj)[0] == waiter.namespace:
                waiter.offer(obj)
                if waiter.future.done():
                    return

    def _changed(self, key: Key, event: WatchEvent) -> None:
        """Tell waiters and subscribers that ``key`` changed (``event`` already applied)."""
        current = self._cache.get(key)
        for waiter in list(self._named.get(key, ())):
            waiter.offer(current)
        if current is not None:
            for waiter in list(self._unnamed):
                if waiter.namespace is None or waiter.namespace == key[0]:
                    waiter.offer(current)
        for sub in self._subscriptions:
            sub._put(event)

    # ------------------------------------------------------------------ keeping the cache

    async def _relist(self) -> None:
        """List, replace the cache, and report the differences as events."""
        listing = await self._cluster.list(
            self.resource,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        fresh: dict[Key, Obj] = {}
        for item in listing.get("items") or []:
            # A real server omits kind/apiVersion on list items; watch events carry them.
            obj = {"apiVersion": self._type.api_version, "kind": self._type.kind, **item}
            fresh[key_of(obj)] = obj
        old, self._cache = self._cache, fresh
        self._resource_version = str((listing.get("metadata") or {}).get("resourceVersion") or "")
        first = not self._synced
        self._synced = True
        for key, obj in old.items():
            if key not in fresh:
                self._changed(key, WatchEvent("DELETED", obj))
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                self._changed(key, WatchEvent("ADDED", obj))
            elif _version(before) != _version(obj):
                self._changed(key, WatchEvent("MODIFIED", obj))
        if first:  # waiters registered before the first list see the state as it is
            for waiter in [*self._unnamed, *(w for ws in self._named.values() for w in ws)]:
                self._offer_current(waiter)

    def _apply(self, event: WatchEvent) -> None:
        """Apply one watch event to the cache."""
        if event.resource_version:
            self._resource_version = event.resource_version
        if event.type == "BOOKMARK":
            return
        key = key_of(event.object)
        if event.type in ("ADDED", "MODIFIED"):
            self._cache[key] = event.object
        elif event.type == "DELETED":
            self._cache.pop(key, None)
        else:
            raise ValueError(f"unexpected watch event type {event.type!r}")
        self._changed(key, event)

    async def _run(self) -> None:
        """The background task: watch, re-watch, relist on Gone, back off on errors.

        A stream that ends with events in it is renewed at once, as is the first
        one that ends empty and early; the same again and again backs off.  Gone
        relists at once, unless it answers a watch from a version just listed.
        """
        relist = False
        while not self._stopping:
            delay = 0.0
            fresh = False
            try:
                if relist:
                    await self._relist()
                    relist, fresh = False, True
                if await self._watch_once():
                    self._backoff.reset()
                else:  # ended early and empty: renewed at once the first time, then backing off
                    delay = self._backoff.fail()
                    if self._backoff.failures == 1:
                        delay = 0.0
            except asyncio.CancelledError:
                raise
            except Gone:
                log.info("%s watch expired at resourceVersion %s; relisting", self.resource, self._resource_version)
                relist = True
                if fresh:
                    delay = self._backoff.fail()
            except ClusterError as exc:
                delay = self._backoff.fail()
                if exc.retry_after_seconds:
                    delay = max(delay, float(exc.retry_after_seconds))
                log.warning("%s informer: %s; retrying in %.1fs", self.resource, exc, delay)
            except Exception:
                # Not an API answer: the cache may have missed something, so rebuild it.
                relist = True
                delay = self._backoff.fail()
                log.exception("%s informer failed; relisting in %.1fs", self.resource, delay)
            if delay and not self._stopping:
                await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds before retrying, or until stop()."""
        loop = asyncio.get_running_loop()
        self._pause = loop.create_future()
        timer = loop.call_later(delay, _resolve, self._pause)
        try:
            await self._pause
        finally:
            timer.cancel()
            self._pause = None

    async def _watch_once(self) -> bool:
        """Follow one watch request to its end.

        Returns whether it was a healthy stream: one that delivered events or
        stayed open for a good part of its timeout.
        """
        if self._stopping:
            return True
        loop = asyncio.get_running_loop()
        started = loop.time()
        delivered = False
        stream = self._cluster.watch(
            self.resource,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            resource_version=self._resource_version or None,
            timeout_seconds=self.resync_timeout,
            allow_bookmarks=True,
        )
        try:
            async for event in stream:
                if self._stopping:
                    break
                delivered = True
                self._apply(event)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        return delivered or loop.time() - started >= self.resync_timeout / 2


def _expire(future: asyncio.Future[Any], timeout: float) -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError(f"no matching state within {timeout}s"))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")

