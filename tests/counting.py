"""A cluster that counts the requests made through it, for tests of what the gateway costs the API server.

Wrap the cluster a component uses; every call is passed on and counted by
``(verb, resource)``::

    cluster = CountingCluster(MemoryCluster(store))
    async with Informer(cluster, "pods") as informer:
        ...
    assert cluster.calls == {("list", "pods"): 1, ("watch", "pods"): 1}

A watch counts when its stream is first read (when a real client sends the
request); ``watch_opened`` is set then.  ``hold_watches()`` makes the watches
opened next wait for ``release()`` before reaching the cluster, so that writes
happen while nobody watches.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from gateway.cluster.interface import Cluster, WatchEvent

_IMPLIED_RESOURCE = {
    "bind_pod": "pods/binding",
    "read_pod_log": "pods/log",
    "create_token": "serviceaccounts/token",
    "can_i": "selfsubjectaccessreviews",
}
"""Methods whose first argument is not a resource, and the resource their request goes to."""


class CountingCluster:
    """A :class:`~gateway.cluster.interface.Cluster` passing every call to ``inner`` and counting it.

    ``close`` (and anything not a request) passes through uncounted.
    """

    def __init__(self, inner: Cluster) -> None:
        self.inner = inner
        self.calls: Counter[tuple[str, str]] = Counter()
        """Requests made so far, by ``(verb, resource)``; a subresource is ``pods/status``."""
        self.watch_opened = asyncio.Event()
        self._gate: asyncio.Event | None = None

    def count(self, verb: str) -> int:
        """Requests made so far with ``verb``, on any resource."""
        return sum(n for (called, _), n in self.calls.items() if called == verb)

    def hold_watches(self) -> None:
        """Make the watches opened from now on wait for :meth:`release` before reaching the cluster."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        """Let the held watches (and those opened later) through."""
        assert self._gate is not None, "no watch is held"
        self._gate.set()

    def __getattr__(self, verb: str) -> Any:
        attribute = getattr(self.inner, verb)
        if verb.startswith("_") or verb == "close" or not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[(verb, _resource(verb, args, kwargs))] += 1
            return attribute(*args, **kwargs)

        return counted

    def watch(self, resource: str, **options: Any) -> AsyncIterator[WatchEvent]:
        return self._watch(resource, options)

    async def _watch(self, resource: str, options: dict[str, Any]) -> AsyncIterator[WatchEvent]:
        self.calls[("watch", resource)] += 1
        self.watch_opened.set()
        if self._gate is not None:
            await self._gate.wait()
        stream = self.inner.watch(resource, **options)
        try:
            async for event in stream:
                yield event
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()


def _resource(verb: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The resource a request goes to, with its subresource (``pods/status``) when it has one."""
    if verb in _IMPLIED_RESOURCE:
        return _IMPLIED_RESOURCE[verb]
    resource = str(args[0] if args else kwargs.get("resource", ""))
    subresource = kwargs.get("subresource")
    return f"{resource}/{subresource}" if subresource else resource
