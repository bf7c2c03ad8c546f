"""Following a container's log file as it grows: ``kubectl logs -f`` and ``kubectl attach``.

A container's stdout and stderr go straight from its process to its log file
(``fakes.node.containers``), so nothing in this process sees a write happen.  As the
kubelet does (``pkg/kubelet/kuberuntime/logs/logs.go`` ``waitLogs``, with fsnotify),
:func:`follow` waits for the file to be modified through inotify, and stops once the
container has exited and the file is read to its end.  Where inotify is missing, it
re-reads the file each :data:`STAT_SECONDS`, as the kubelet falls back to.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

CHUNK = 32 * 1024
STAT_SECONDS = 1.0
"""How often a file is re-read where inotify is not available."""

_IN_MODIFY = 0x002
_IN_CLOEXEC = 0o2000000
_IN_NONBLOCK = 0o4000


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    return libc if hasattr(libc, "inotify_init1") else None


class _Modified:
    """An inotify watch of one file: :meth:`wait` returns after the file was written to (or at once,
    the first time, when inotify is unavailable and a timed re-read stands in for it)."""

    def __init__(self, path: Path) -> None:
        self._fd = -1
        self._changed = asyncio.Event()
        libc = _libc()
        if libc is None:
            return
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return
        if libc.inotify_add_watch(fd, os.fsencode(path), _IN_MODIFY) < 0:
            os.close(fd)
            return
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._readable)

    def _readable(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.read(self._fd, 4096)  # the events themselves say nothing more than "modified"
        self._changed.set()

    async def wait(self, also: asyncio.Future[Any]) -> None:
        """Return when the file changed or ``also`` is done."""
        if self._fd < 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(also), STAT_SECONDS)
            return
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({changed, asyncio.ensure_future(also)}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
        self._changed.clear()

    def close(self) -> None:
        if self._fd >= 0:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1


def _read_from(path: Path, offset: int) -> bytes:
    """What ``path`` holds past ``offset`` (a worker thread's read)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(CHUNK)
    except FileNotFoundError:
        return b""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


async def follow(path: Path, exited: asyncio.Future[Any], *, offset: int | None = None) -> AsyncIterator[bytes]:
    """Yield what is written to ``path`` from ``offset`` (default: its current end) until ``exited`` is
    done and everything written before has been yielded.

    Called by the node's streaming server (``fakes.node.streaming``) for followed logs and attaches.
    """
    if offset is None:
        offset = await asyncio.to_thread(_size, path)
    watch = _Modified(path)
    try:
        while True:
            ended = exited.done()
            data = await asyncio.to_thread(_read_from, path, offset)
            if data:
                offset += len(data)
                yield data
                continue
            if ended:
                return
            await watch.wait(exited)
    finally:
        watch.close()
