"""Reads of the simulated cluster's state: get, list and watch, with their selectors.

:class:`Reading` is a mixin of ``fakes.state.store.Store``; the front ends
(``fakes.memory.MemoryCluster``, through it the API server) call these methods
for GET, LIST and WATCH requests, tests call :meth:`Reading.objects` and
:meth:`Reading.open_watches` to check invariants.  Reads never block and never
change state; a watch is fed by the store's writes
(``fakes.state.watching.EventLog``).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from fakes.state import paging, versions
from fakes.state.objects import clone
from fakes.state.selectors import parse_field_selector, parse_label_selector
from fakes.state.watching import EventLog, Watch
from gateway.cluster.resources import ResourceType


class Reading:
    """GET, LIST and WATCH over the stored objects (mixed into ``Store``; uses its storage)."""

    # Provided by Store:
    _objects: dict[str, dict[tuple[str, str], dict[str, Any]]]
    _rv: int
    _log: EventLog

    def _stored(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        """GET one object; :class:`NotFound` like ``pods "x" not found``."""
        return clone(self._stored(rt, namespace, name))

    def list(self, rt: ResourceType, namespace: str | None, label_selector: str | None = None,
             field_selector: str | None = None, *, limit: int | None = None,
             continue_token: str | None = None) -> dict[str, Any]:
        """LIST: a ``<Kind>List`` of the matching objects sorted by namespace/name, with the current version.

        As on the real server, list items carry no ``kind``/``apiVersion`` of their own.  With
        ``limit``, a page of at most that many and, when more match, ``metadata.continue``: a
        token for the next page (see :mod:`fakes.state.paging`), which lists from where the page
        ended, at the first page's ``resourceVersion``.
        """
        matches = self._matcher(rt, namespace, label_selector, field_selector)
        rv, after = self._rv, None
        if continue_token:
            rv, after = paging.read_token(continue_token, self._log.oldest_available(rt.plural))
        items: builtins.list[dict[str, Any]] = []
        last = ("", "")  # the key of the page's last item
        for key, obj in sorted(self._objects[rt.plural].items()):
            if after is not None and key <= after:
                continue
            if matches(obj):
                if limit and len(items) == limit:
                    return self._page(rt, rv, items, paging.token(rv, last))
                item = clone(obj)
                item.pop("kind", None)
                item.pop("apiVersion", None)
                items.append(item)
                last = key
        return self._page(rt, rv, items, None)

    @staticmethod
    def _page(rt: ResourceType, rv: int, items: builtins.list[dict[str, Any]], more: str | None) -> dict[str, Any]:
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        if more is not None:
            metadata["continue"] = more
        return {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": metadata, "items": items}

    def _matcher(self, rt: ResourceType, namespace: str | None, label_selector: str | None,
                 field_selector: str | None) -> Callable[[dict[str, Any]], bool]:
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rt.plural)
        ns = namespace if rt.namespaced and namespace else None

        def matches(obj: dict[str, Any]) -> bool:
            meta = obj["metadata"]
            return ((ns is None or meta.get("namespace") == ns) and labels.matches(meta.get("labels"))
                    and fields.matches(obj))

        return matches

    def objects(self, rt: ResourceType, namespace: str | None = None) -> builtins.list[dict[str, Any]]:
        """Deep copies of every stored object of ``rt`` (in ``namespace``), for tests and invariants."""
        return [clone(o) for (ns, _n), o in sorted(self._objects[rt.plural].items())
                if namespace is None or ns == namespace]

    # ---------------------------------------------------------------- watch

    def watch(self, rt: ResourceType, namespace: str | None, label_selector: str | None,
              field_selector: str | None, resource_version: str | None, allow_bookmarks: bool = False,
              timeout_seconds: float | None = None) -> Watch:
        """WATCH from ``resource_version`` (``None``/``"0"``: ADDED for what exists now, then changes).

        Raises :class:`Gone` when the version is older than the retained window, :class:`ServerError` for
        one that is not a number (:func:`fakes.state.versions.watch_version`).  A version the store has not
        reached yet is watched from: only writes after it are delivered.
        """
        matches = self._matcher(rt, namespace, label_selector, field_selector)  # the handler parses selectors first
        since = versions.watch_version(resource_version)
        # A version the store has not reached opens the watch all the same: it delivers the writes after that
        # version, as cacher.go Watch does (only a watch with sendInitialEvents waits for the cache).
        current = (obj for _key, obj in sorted(self._objects[rt.plural].items())) if since is None else ()
        return self._log.open(rt.plural, rt.kind, rt.api_version, matches, since, current, lambda: self._rv,
                              timeout_seconds=timeout_seconds, allow_bookmarks=allow_bookmarks)

    def drop_watches(self, resource: str | None = None) -> int:
        """End open watches (``faults.drop_watches`` does this); return how many."""
        return self._log.drop(resource)

    def open_watches(self, resource: str | None = None) -> int:
        """How many watches are open (tests use it to check that none leak)."""
        return self._log.open_count(resource)

