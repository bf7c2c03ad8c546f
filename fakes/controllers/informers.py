"""The controller manager's shared informers: one watch-fed cache per kind, and who hears of its changes.

Every controller reads objects from these caches and registers handlers for the changes it
cares about (:meth:`SharedInformers.on`), as controllers share client-go's informer factory.
Each cache is a :class:`gateway.cluster.informer.Informer` (list, then one watch, relist on
410 Gone) opened with the manager's own credentials; one dispatcher task per kind hands each
change to the handlers, in order.  Handlers only enqueue keys: they must not block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gateway.aio import OwnedTasks
from gateway.cluster.informer import Informer, Subscription
from gateway.cluster.interface import Cluster, Obj, WatchEvent

log = logging.getLogger(__name__)

Handler = Callable[[str, Obj], None]
"""``handler(event_type, object)``: ``ADDED``, ``MODIFIED`` or ``DELETED`` (with the last state seen)."""


class SharedInformers:
    """The caches of ``resources`` over ``cluster``; :meth:`start` fills them, :meth:`stop` ends them."""

    def __init__(self, cluster: Cluster, resources: tuple[str, ...]) -> None:
        self._informers = {resource: Informer(cluster, resource) for resource in resources}
        self._handlers: dict[str, list[Handler]] = {resource: [] for resource in resources}
        self._tasks = OwnedTasks("controller manager informers")

    def __getitem__(self, resource: str) -> Informer:
        return self._informers[resource]

    def on(self, resource: str, handler: Handler) -> None:
        """Call ``handler`` for every change of ``resource`` (registered before :meth:`start`)."""
        self._handlers[resource].append(handler)

    def get(self, resource: str, namespace: str | None, name: str) -> Obj | None:
        """The cached object, or ``None``."""
        return self._informers[resource].get(namespace, name)

    def items(self, resource: str, namespace: str | None = None) -> list[Obj]:
        """The cached objects of ``resource`` (in ``namespace`` when given)."""
        objects = self._informers[resource].items()
        if namespace is None:
            return objects
        return [obj for obj in objects if (obj.get("metadata") or {}).get("namespace") == namespace]

    async def start(self) -> None:
        """List every kind, then hand the handlers an ``ADDED`` per cached object and every change after."""
        for informer in self._informers.values():
            await informer.start()
        for resource, informer in self._informers.items():
            self._tasks.spawn(self._dispatch(resource, informer.subscribe(replay=True)), resource)

    async def stop(self) -> None:
        """End the dispatchers and the watches."""
        for informer in self._informers.values():
            await informer.stop()
        await self._tasks.cancel_all()

    async def _dispatch(self, resource: str, changes: Subscription) -> None:
        async with changes:
            async for event in changes:
                self._deliver(resource, event)

    def _deliver(self, resource: str, event: WatchEvent) -> None:
        for handler in self._handlers[resource]:
            try:
                handler(event.type, event.object)
            except Exception:  # one broken handler must not starve the others
                log.exception("%s handler failed on %s", resource, event.type)
