"""What the gateway read from disk, kept until a file under the folders it came from changes.

Every kernel start needs its kernelspec's ``kernel.json`` and pod template.  Reading them
at each start costs two worker-thread hops and the reads themselves (about half a
millisecond of CPU a start, ``bench/README.md``), yet an operator who edits a kernelspec (or
whose ConfigMap holding one is updated) expects the next start to use the edit, without a
restart.  :class:`FolderWatch` gives both: the gateway has Linux's inotify note any change in
the folders a read came from, and later asks it, with one non-blocking read of the inotify
descriptor and no file access, whether anything changed since.  :class:`WatchedReads`
keeps each read's result while nothing has.

Where inotify cannot be had (not Linux, or the user's inotify instances or watches are used
up), or a folder cannot be watched, nothing is kept and every start reads the files, as
before.  The module imports nothing of the gateway, so every layer may use it.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger("gateway.filewatch")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# <sys/inotify.h>: what changes a watch reports, and the flags of inotify_init1.
_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_ONLYDIR = 0x01000000
CHANGES = (_IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
           | _IN_DELETE_SELF | _IN_MOVE_SELF)
"""Everything that can change what a read of the folder returns (a file's content, mode, name, presence;
the folder's own removal), for the files in the folder and the folder itself.  A ConfigMap's update is a
rename of its ``..data`` link in the folder it is mounted on (``IN_MOVED_TO``)."""
_READ_SIZE = 64 * 1024


def _inotify() -> tuple[Callable[[int], int], Callable[[int, bytes, int], int]] | None:
    """libc's ``inotify_init1`` and ``inotify_add_watch``, or ``None`` where there are none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        init, add = libc.inotify_init1, libc.inotify_add_watch
    except (OSError, AttributeError):
        return None
    init.argtypes, init.restype = [ctypes.c_int], ctypes.c_int
    add.argtypes, add.restype = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32], ctypes.c_int
    return init, add


class FolderWatch:
    """Tells whether anything changed in the folders it was asked to watch, without touching a file.

    Made and stopped by the composition root (``gateway.app``), which hands it to the kernelspecs
    and the provisioner's pod builder.  :meth:`generation` runs on the event loop; :meth:`watch` in
    the worker thread that reads the folders, before it reads them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # held only to copy or close the descriptor, never across a path lookup
        self._generation = 0
        self._fd: int | None = None
        self._add: Callable[[int, bytes, int], int] | None = None
        calls = _inotify()
        if calls is None:
            log.info("no inotify here: kernelspecs and pod templates are read at every start")
            return
        init, self._add = calls
        fd = init(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            log.info("cannot watch kernelspec folders (inotify: %s): they are read at every start",
                     os.strerror(ctypes.get_errno()))
            return
        self._fd = fd

    @property
    def available(self) -> bool:
        return self._fd is not None

    def generation(self) -> int:
        """A number that moves whenever a watched folder changed since it was last asked.

        Called on the event loop before a kept read is used and after a read is made: one
        non-blocking read of the inotify descriptor, which the kernel fills before the write that
        changed a file returns, so an edit made before the call is seen by it.
        """
        fd = self._fd  # closed only by stop(), on the loop as well
        if fd is None:
            return self._generation
        changed = False
        while True:
            try:
                if not os.read(fd, _READ_SIZE):
                    break
            except BlockingIOError:
                break
            changed = True  # what changed does not matter: every kept read is dropped
        if changed:
            self._generation += 1
        return self._generation

    def watch(self, folders: Iterable[Path]) -> bool:
        """Watch each folder, or where one does not exist, the nearest folder above it that does (its
        creation shows there); whether all are watched.  Blocking (it looks the paths up): called in the
        worker thread of a read, before the read."""
        with self._lock:
            if self._fd is None or self._add is None:
                return False
            fd = os.dup(self._fd)  # the same inotify instance, for as long as this needs it, whatever stop() does
        try:
            return all(self._watch_nearest(fd, self._add, folder) for folder in folders)
        finally:
            os.close(fd)

    @staticmethod
    def _watch_nearest(fd: int, add: Callable[[int, bytes, int], int], folder: Path) -> bool:
        path = folder.absolute()
        while True:
            if add(fd, os.fsencode(path), CHANGES | _IN_ONLYDIR) >= 0:  # a file there: its folder, above
                return True
            error = ctypes.get_errno()
            if error not in (errno.ENOENT, errno.ENOTDIR) or path.parent == path:
                if error == errno.ENOSPC:
                    log.warning("inotify's watches are used up (fs.inotify.max_user_watches): %s is read at "
                                "every start", folder)
                return False
            path = path.parent

    async def stop(self) -> None:
        """Close the descriptor (its watches go with it); afterwards nothing is watched.  Called at the gateway's stop."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class WatchedReads(Generic[K, V]):
    """Results of blocking reads from disk, each kept until a folder it came from changes.

    Owned by one reader (the kernelspecs' lookup for a start, the pod builder's template); a key
    names what was read.  Without a :class:`FolderWatch` (or one that is not available) every
    :meth:`read` reads.  A read that raised is not kept, so names that do not exist cost what they
    did and cannot fill it; it keeps :data:`LIMIT` results at most.
    """

    LIMIT = 256

    def __init__(self, watch: FolderWatch | None) -> None:
        self._watch = watch if watch is not None and watch.available else None
        self._kept: dict[K, tuple[int, V]] = {}

    async def read(self, key: K, folders: Sequence[Path], reader: Callable[[], V],
                   keep: Callable[[V], bool] | None = None) -> V:
        """``reader()``'s result, run in a worker thread unless one kept for ``key`` is still good.

        ``folders``: every folder whose change could change what ``reader`` returns (looked up again
        when it runs: one that does not exist yet is watched through the folder above it).  ``keep``:
        whether a result may be kept, for a reader whose result depends on those folders only in some
        cases (a default kernelspec that is the one named, not the first found).
        """
        watch = self._watch
        if watch is None:
            return await asyncio.to_thread(reader)
        generation = watch.generation()
        kept = self._kept.get(key)
        if kept is not None and kept[0] == generation:
            return kept[1]
        value, watched = await asyncio.to_thread(self._watched_read, watch, folders, reader)
        if watched and (keep is None or keep(value)):  # kept with the generation from before the read: a
            # change while it read drops it next time
            if len(self._kept) >= self.LIMIT:
                self._kept.clear()
            self._kept[key] = (generation, value)
        return value

    @staticmethod
    def _watched_read(watch: FolderWatch, folders: Sequence[Path], reader: Callable[[], V]) -> tuple[V, bool]:
        watched = watch.watch(folders)  # first: a change made while it reads shows afterwards
        return reader(), watched
