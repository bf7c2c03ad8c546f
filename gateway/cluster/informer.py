"""A watch-fed cache of one kind of object: the gateway's view of its kernel pods.

One :class:`Informer` lists the objects once (in pages), then keeps a single watch open and
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

It works over any :class:`~gateway.cluster.interface.Cluster`.  Those who wait
on the cache and subscribe to its changes are in :mod:`gateway.cluster.observers`;
how its lists and watches fare (the gateway's readiness) is its ``health``, an
:class:`~gateway.cluster.informerhealth.InformerHealth`.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.aio import Backoff, OwnedTasks
from gateway.cluster.informerhealth import DEFAULT_GRACE, HealthState, InformerHealth
from gateway.cluster.interface import Cluster, ClusterError, Gone, Obj, ServiceUnavailable, WatchEvent
from gateway.cluster.observers import (
    CacheKey,
    InformerStopped,
    Predicate,
    Subscription,
    Waiter,
    Waiters,
    expire,
    key_of,
)
from gateway.cluster.resources import resource_type

__all__ = ["CacheKey", "HealthState", "Informer", "InformerHealth", "InformerStopped", "Predicate", "Subscription",
           "key_of"]

log = logging.getLogger(__name__)

LIST_PAGE = 500
"""Objects asked for per page of a list (client-go's reflector asks for as many)."""


class Informer:
    """The cache of ``resource`` objects matching the selectors, kept current by a watch.

    The gateway's informer of kernel pods is created, started and stopped by the
    composition root (``gateway.app``), which hands it to the provisioner and
    asks it whether it is healthy (readiness: :attr:`health`).  ``resync_timeout``
    is how long one watch request stays open (the server's ``timeoutSeconds``)
    before the informer renews it from the last version seen; renewals are the
    only calls an idle informer makes.  ``readiness_grace`` is how long failing
    lists and watches leave it ready; at its end one list checks whether the
    API answers, and the informer is unavailable until a list or watch works.

    Objects handed out (``get``, ``items``, ``wait_for``, events) are the cached
    objects themselves: treat them as read-only, as client-go asks of its
    informers' caches.  They come without ``metadata.managedFields`` (see :func:`_trimmed`).
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
        readiness_grace: float = DEFAULT_GRACE,
    ) -> None:
        self._cluster = cluster
        self._type = resource_type(resource)
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_timeout = resync_timeout
        self._backoff = backoff or Backoff()
        self._cache: dict[CacheKey, Obj] = {}
        self._resource_version = ""
        self._synced = False
        self._tasks = OwnedTasks(f"informer {resource}")
        self._task: asyncio.Task[None] | None = None  # the list-and-watch loop, once started
        self._stopping = False
        self._pause: asyncio.Future[None] | None = None  # a backoff in progress; stop() cuts it short
        self._waiters = Waiters()
        self._subscriptions: set[Subscription] = set()
        self.health = InformerHealth(resource, readiness_grace)
        self._grace_timer: asyncio.TimerHandle | None = None  # armed while failures are within the grace

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
        self._task = self._tasks.spawn(self._run(), "list and watch")

    async def stop(self) -> None:
        """End the watch task; pending waiters get :class:`InformerStopped`, subscriptions end."""
        # The flag ends the loop even if a cancellation gets lost in a watch stream
        # that swallows it (Python 3.11's asyncio.wait_for can, when a result races it).
        self._stopping = True
        if self._pause is not None and not self._pause.done():
            self._pause.set_result(None)
        self._disarm_grace()
        await self._tasks.cancel_all()
        self.health.stopped()
        self._waiters.stop(f"the {self.resource} informer stopped")
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
        """True once the first list has filled the cache (whatever happened since: see :attr:`health`)."""
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
        is returned.  Called by the provisioner: a launch awaits its pod's IP or
        failure, a stop or restart the pod's deletion.  Raises ``asyncio.TimeoutError``
        after ``timeout`` seconds, whatever the predicate raises, or :class:`InformerStopped`.
        """
        if name is not None and self._type.namespaced and namespace is None:
            raise ValueError(f"waiting for {self.resource} by name needs a namespace")
        if self._stopping:
            raise InformerStopped(f"the {self.resource} informer stopped")
        loop = asyncio.get_running_loop()
        waiter = Waiter(predicate, namespace, name, loop.create_future())
        if self._synced:
            waiter.offer_cached(self._cache)
        if waiter.future.done():
            return waiter.future.result()
        self._waiters.add(waiter)
        # A timer rather than asyncio.wait_for: awaiting the future itself keeps a
        # cancellation of the caller from ever being lost to a result arriving at once.
        deadline = loop.call_later(timeout, expire, waiter.future, timeout)
        try:
            return await waiter.future
        finally:
            deadline.cancel()
            self._waiters.discard(waiter)

    def subscribe(self, *, replay: bool = False) -> Subscription:
        """Every change from now on; with ``replay``, first an ``ADDED`` for each cached object."""
        sub = Subscription(self._subscriptions.discard)
        if replay:
            for obj in self._cache.values():
                sub.put(WatchEvent("ADDED", obj))
        self._subscriptions.add(sub)
        return sub

    def _changed(self, key: CacheKey, event: WatchEvent) -> None:
        """Tell waiters and subscribers that ``key`` changed (``event`` already applied)."""
        self._waiters.changed(key, self._cache.get(key))
        for sub in self._subscriptions:
            sub.put(event)

    # ------------------------------------------------------------------ keeping the cache

    async def _relist(self) -> None:
        """List, replace the cache, and report the differences as events."""
        fresh, version = await self._list_pages()
        old, self._cache = self._cache, fresh
        self._resource_version = version
        first = not self._synced
        self._synced = True
        if first:
            self.health.synced()
        elif not self._stopping:
            self.health.relisted()
        self._disarm_grace()
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
            for waiter in self._waiters:
                waiter.offer_cached(self._cache)

    async def _list_pages(self) -> tuple[dict[CacheKey, Obj], str]:
        """Every object, listed :data:`LIST_PAGE` at a time, and the first page's ``resourceVersion``.

        A page is parsed and trimmed before the next is asked for, so listing thousands of kernel
        pods never holds all of their JSON, nor all of their parsed ``managedFields``, at once
        (client-go's reflector lists in pages of 500 too).  A continuation the server no longer
        keeps (410) is followed by one list of everything, as client-go's pager falls back.
        """
        fresh: dict[CacheKey, Obj] = {}
        version = ""
        token: str | None = None
        limit: int | None = LIST_PAGE
        while True:
            try:
                listing = await self._cluster.list(
                    self.resource,
                    namespace=self.namespace,
                    label_selector=self.label_selector,
                    field_selector=self.field_selector,
                    limit=limit,
                    continue_token=token,
                )
            except Gone:
                if token is None:
                    raise
                log.info("%s: the list's continuation expired; listing everything at once", self.resource)
                fresh, token, limit = {}, None, None
                continue
            meta = listing.get("metadata") or {}
            if token is None:
                version = str(meta.get("resourceVersion") or "")
            for item in listing.get("items") or []:
                # A real server omits kind/apiVersion on list items; watch events carry them.
                obj = _trimmed({"apiVersion": self._type.api_version, "kind": self._type.kind, **item})
                fresh[key_of(obj)] = obj
            token = str(meta.get("continue") or "") or None
            if token is None or limit is None:
                return fresh, version

    def _apply(self, event: WatchEvent) -> None:
        """Apply one watch event to the cache."""
        if event.resource_version:
            self._resource_version = event.resource_version
        self._working()
        if event.type == "BOOKMARK":
            return
        event = WatchEvent(event.type, _trimmed(event.object))
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
                # Past the grace (or refused), only a list tells that the API answers again.
                if relist or not self.health.ready:
                    await self._relist()
                    relist, fresh = False, True
                if await self._watch_once():
                    self._backoff.reset()
                    self._working()
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
                self._failed(exc)
                delay = self._backoff.fail()
                if exc.retry_after_seconds:
                    delay = max(delay, float(exc.retry_after_seconds))
                log.warning("%s informer: %s; retrying in %.1fs", self.resource, exc, delay)
            except Exception as exc:
                # Not an API answer: the cache may have missed something, so rebuild it.
                self._failed(exc)
                relist = True
                delay = self._backoff.fail()
                log.exception("%s informer failed; relisting in %.1fs", self.resource, delay)
            if delay and not self._stopping:
                await self._sleep(delay)

    # ------------------------------------------------------------------ health

    def _working(self) -> None:
        """A watch delivered an event or ran its course: the API answers."""
        if not self._stopping:
            self.health.synced()
            self._disarm_grace()

    def _failed(self, error: BaseException) -> None:
        """A list or watch failed: record it, and start the grace at the first failure of a run."""
        if self._stopping:
            return
        self.health.failed(error)
        if self.health.state is HealthState.DEGRADED and self._grace_timer is None and not self._stopping:
            loop = asyncio.get_running_loop()
            self._grace_timer = loop.call_later(self.health.grace, self._grace_ended)

    def _disarm_grace(self) -> None:
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None

    def _grace_ended(self) -> None:
        """The grace timer's callback: unless something worked meanwhile, check with one list."""
        self._grace_timer = None
        if self.health.state is HealthState.DEGRADED and not self._stopping:
            self._tasks.spawn(self._check_after_grace(), "check the API after the readiness grace")

    async def _check_after_grace(self) -> None:
        """One list, bounded by the grace: an answer means the watch being retried (or silently open) is
        fine; a failure or silence makes the informer unavailable until a list or watch works."""
        try:
            await asyncio.wait_for(
                self._cluster.list(self.resource, namespace=self.namespace, label_selector=self.label_selector,
                                   field_selector=self.field_selector),
                max(self.health.grace, 1.0),
            )
        except asyncio.TimeoutError:
            self.health.grace_passed(ServiceUnavailable("the API server did not answer a list in time"))
        except ClusterError as exc:
            self.health.grace_passed(exc)
        else:
            if self.health.state is HealthState.DEGRADED:
                self.health.synced()
            return
        log.warning("%s informer: not ready: %s", self.resource, self.health.reason)
        await self._check_until_answered()

    async def _check_until_answered(self) -> None:
        """While unavailable, list now and then (backing off) until the API answers one.

        The watch being retried may have reopened on an API server that came back just after the
        check above: with nothing changing, no event would say it works, and readiness would wait
        for that watch's end.  A list answered makes the informer ready again; its cache is still
        kept by that watch, resumed from where it was.
        """
        backoff = Backoff(base=self._backoff.base, cap=self._backoff.cap)
        while self.health.state is HealthState.UNAVAILABLE and not self._stopping:
            await asyncio.sleep(backoff.fail())  # this task is cancelled when the informer stops
            if self.health.state is not HealthState.UNAVAILABLE:
                return
            try:
                await asyncio.wait_for(
                    self._cluster.list(self.resource, namespace=self.namespace, label_selector=self.label_selector,
                                       field_selector=self.field_selector),
                    max(self.health.grace, 1.0),
                )
            except (asyncio.TimeoutError, ClusterError):
                continue
            if self.health.state is HealthState.UNAVAILABLE and not self._stopping:
                self.health.synced()
                log.info("%s informer: the Kubernetes API answers again", self.resource)

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


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _trimmed(obj: Obj) -> Obj:
    """``obj`` without ``metadata.managedFields``, which nothing of the gateway reads (a copy: ``obj`` is left as it is).

    Every object the informer keeps or hands out passes here.  The API server records in
    ``managedFields`` which writer set which field, one small map per field: 4 of a kernel
    pod's 9 KB of JSON, and most of its objects in memory, for each cached pod.  Controllers
    built on client-go drop them for the same reason (``tools/cache``'s
    ``TransformStripManagedFields``, controller-runtime's cache transforms).
    """
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {name: value for name, value in meta.items() if name != "managedFields"}}


def _version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")

