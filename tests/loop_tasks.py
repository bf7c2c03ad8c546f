"""The asyncio tasks a test leaves running on its event loop.

Every async test under ``tests/`` is checked by the autouse fixture of
``tests/conftest.py`` once its fixtures are torn down; a test driving an event
loop of its own (a hypothesis state machine) checks that loop when it is done
with it::

    left = still_running_after(loop)
    assert not left, describe(left)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

GRACE = 2.0
"""Seconds leftover tasks get to end on their own (a closed connection's reader, a cancelled task unwinding)."""


def unfinished_tasks(loop: asyncio.AbstractEventLoop | None = None) -> list[asyncio.Task[Any]]:
    """The tasks of ``loop`` (by default the running one) not done yet, other than the one calling."""
    loop = loop if loop is not None else asyncio.get_running_loop()
    current = asyncio.current_task(loop)
    return [task for task in asyncio.all_tasks(loop) if task is not current and not task.done()]


def still_running_after(loop: asyncio.AbstractEventLoop, grace: float = GRACE) -> list[asyncio.Task[Any]]:
    """The tasks of ``loop`` still unfinished after awaiting them for at most ``grace`` seconds.

    Called once a test is done with ``loop``, which must not be running; the
    tasks are neither cancelled nor otherwise touched.
    """
    leftover = unfinished_tasks(loop)
    if leftover:
        loop.run_until_complete(asyncio.wait(leftover, timeout=grace))
    return unfinished_tasks(loop)


def describe(tasks: Iterable[asyncio.Task[Any]]) -> str:
    """One line per task: its name, its coroutine and where that coroutine waits."""
    lines = []
    for task in tasks:
        coro = task.get_coro()
        line = f"{task.get_name()}: {getattr(coro, '__qualname__', repr(coro))}"
        frame = getattr(coro, "cr_frame", None)
        if frame is not None:
            line += f" at {frame.f_code.co_filename}:{frame.f_lineno}"
        lines.append(line)
    return "\n".join(sorted(lines))
