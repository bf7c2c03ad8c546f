"""One controller's reconcile loop: take a key, reconcile it, retry it with back-off when that failed.

Every controller of ``fakes.controllers`` is a :class:`Controller`: it registers informer
handlers that enqueue keys (:meth:`Controller.register`), and reconciles one key at a time
(:meth:`Controller.sync`), level-based: from the cached state of now, never from the event
that enqueued the key.  The controller manager runs each one's :meth:`Controller.run` as a task
and ends it with :meth:`Controller.shut_down`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from fakes.controllers.events import EventRecorder
from fakes.controllers.informers import SharedInformers
from fakes.controllers.queue import Key, QueueShutDown, WorkQueue
from gateway.cluster.interface import Cluster, ClusterError, Conflict

log = logging.getLogger(__name__)

T = TypeVar("T")

API_TIMEOUT = 10.0
"""Seconds one API call of a controller may take."""


class Controller:
    """A controller named ``name`` (its service account and its Events' component), writing through ``client``."""

    name = "controller"

    def __init__(self, informers: SharedInformers, client: Cluster) -> None:
        self.informers = informers
        self.client = client
        self.queue = WorkQueue()
        self.events = EventRecorder(client, self.name)

    def register(self) -> None:
        """Register the informer handlers that enqueue keys (called once, before the informers start)."""
        raise NotImplementedError

    async def sync(self, key: Key) -> None:
        """Bring the object ``key`` names (and what it owns) to its desired state; raise to be retried."""
        raise NotImplementedError

    async def call(self, awaitable: Awaitable[T]) -> T:
        """An API call bounded by :data:`API_TIMEOUT`."""
        return await asyncio.wait_for(awaitable, API_TIMEOUT)

    async def run(self) -> None:
        """The worker: reconcile keys until the queue shuts down."""
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            try:
                await self.sync(key)
                self.queue.forget(key)
            except Conflict:  # a stale cache: read again soon
                self.queue.retry(key)
            except (ClusterError, asyncio.TimeoutError) as err:
                delay = self.queue.retry(key)
                log.info("%s: syncing %s/%s failed (%s); retrying in %.1fs", self.name, *key, err, delay)
            except Exception:
                delay = self.queue.retry(key)
                log.exception("%s: syncing %s/%s failed; retrying in %.1fs", self.name, *key, delay)
            finally:
                self.queue.done(key)

    def shut_down(self) -> None:
        """Stop taking keys: :meth:`run` returns once the key in hand is done."""
        self.queue.shut_down()
