"""Owned tasks, safe cancellation and jittered back-off: the asyncio habits every long-lived part shares.

The kernel service, the informer, the response listener and the simulated node each run
background tasks.  Each owner keeps them in one :class:`OwnedTasks`, so none is garbage
collected while it runs (asyncio holds only weak references to tasks) and the owner's
``stop()`` ends every one of them; :func:`cancel_and_wait` is the one way to end a task,
:func:`shielded` the one way to let clean-up finish when its caller is cancelled, and
:class:`Backoff` the one retry delay.  The module imports nothing of the gateway, so every
layer (and the simulated cluster) may use it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

log = logging.getLogger("gateway.aio")

T = TypeVar("T")

_CANCEL_RETRY_SECONDS = 1.0


def fastest_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop when it is installed (a dependency on Linux), else asyncio's.

    Called by ``kernelgate serve`` for the gateway's one loop: uvloop runs the loop itself,
    its timers and its TCP and TLS transports in C, which saves CPU on every request and kernel
    start (``bench/README.md``).  The gateway's code is the same on
    either loop; the test suite runs it in-process on asyncio's and served on this one.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to its end on a new loop of :func:`fastest_loop_factory` (as ``asyncio.run`` does)."""
    with asyncio.Runner(loop_factory=fastest_loop_factory()) as runner:
        return runner.run(main)


class OwnedTasks:
    """The background tasks one object owns, held until they end.

    The owner calls :meth:`spawn` for each task it starts and :meth:`cancel_all` from its
    ``stop()``; a task that ends removes itself.
    """

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], name: str | None = None) -> asyncio.Task[T]:
        """Start ``coro`` as a task of this owner and return it."""
        task = asyncio.create_task(coro, name=f"{self._owner}: {name}" if name else None)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)

    async def cancel_all(self) -> None:
        """Cancel every running task and wait until each has ended (the owner's ``stop()`` calls this)."""
        await asyncio.gather(*(cancel_and_wait(task) for task in list(self._tasks)))


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and return once it has ended; never raises what the task raised.

    Cancels again while the task runs on: before Python 3.12, ``asyncio.wait_for`` drops a
    cancellation that arrives just as its awaitable completes (cpython gh-86296), which would
    leave the task running.  A task that ended with an error other than cancellation has that
    error logged, since no one else will see it.  If the caller itself is cancelled meanwhile,
    the cancellation propagates once the task has ended.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=_CANCEL_RETRY_SECONDS)
    if not task.cancelled() and task.exception() is not None:
        log.warning("task %s ended with %r", _name(task), task.exception())


async def shielded(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to its end even if the caller is cancelled meanwhile, then re-raise the cancellation.

    For clean-up that must not stop half-way (deleting what a launch created, say).  However often
    the caller is cancelled while it waits (:func:`cancel_and_wait` cancels again every second), the
    clean-up keeps its owner: the caller returns only once it has ended.
    """
    task = asyncio.ensure_future(awaitable)
    interrupted = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        if not task.cancelled() and task.exception() is not None:
            log.warning("clean-up %s failed after its caller was cancelled: %r", _name(task), task.exception())
        raise asyncio.CancelledError
    return task.result()


class Backoff:
    """Bounded exponential back-off with jitter, for retries after a failure.

    The n-th consecutive failure waits between half and all of ``min(cap, base * 2**(n-1))``
    seconds (client-go's jittered back-off), so a fleet of gateways restarted together does not
    retry in step.
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


def _name(task: asyncio.Future[Any]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)
