"""Log lines that name the kernel they are about: ``kernel=<id>`` on every line emitted while handling it.

Handling a kernel (an HTTP request on ``/api/kernels/<id>...``, a start, restart, shutdown,
auto-restart or cull, and whatever tasks they start) runs inside :func:`kernel_logs`, which
sets a context variable; asyncio copies it into every task started meanwhile, so the pod,
namespace and iopub lines of the provisioner and the kernel service carry it without passing
it along.  :class:`KernelLogFilter`, installed on a log handler, copies it onto each record as
``record.kernel_id`` and ``record.kernel`` (`` kernel=<id>``, or empty), so a format ending in
``%(message)s%(kernel)s`` (:data:`LOG_FORMAT`, what ``kernelgate`` logs with) gives one line
per event with the kernel's id, easy to grep and to parse.

The module imports nothing of the gateway, so every layer may use it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(kernel)s"
"""The format of ``kernelgate``'s log lines (with :class:`KernelLogFilter` on the handler)."""

_KERNEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""What may go into a log line as a kernel id: a client-chosen ``KERNEL_ID`` or URL part is checked first."""

_kernel: ContextVar[str] = ContextVar("kernelgate_kernel", default="")
T = TypeVar("T")


def current_kernel() -> str:
    """The id of the kernel being handled here, ``""`` when none."""
    return _kernel.get()


@contextmanager
def kernel_logs(kernel_id: object) -> Iterator[None]:
    """Within the block (and in the tasks it starts), log lines carry ``kernel_id``.

    Called where the gateway begins to handle a kernel: an HTTP request naming one, and each
    operation of the kernel service.  A value that does not look like a kernel id is not used
    (it could forge a log line), and the kernel already being handled is kept.
    """
    if not isinstance(kernel_id, str) or not _KERNEL_ID.fullmatch(kernel_id):
        yield
        return
    token = _kernel.set(kernel_id)
    try:
        yield
    finally:
        _kernel.reset(token)


async def about_kernel(kernel_id: object, operation: Awaitable[T]) -> T:
    """Await ``operation`` with its log lines naming ``kernel_id``: for a task started on a kernel's behalf by
    something that handles many (``spawn(about_kernel(k.id, shutdown(k)))``)."""
    with kernel_logs(kernel_id):
        return await operation


def tag_task(kernel_id: object) -> None:
    """From here on, this task's log lines (and those of the tasks it starts) carry ``kernel_id``.

    Only for a task that handles one kernel to its end, such as the kernel service's task of a
    start, which learns the kernel's id part-way: the tag ends with the task, whose context is
    its own.  Elsewhere use :func:`kernel_logs`.
    """
    if isinstance(kernel_id, str) and _KERNEL_ID.fullmatch(kernel_id):
        _kernel.set(kernel_id)


def kernel_extra(kernel_id: object) -> dict[str, str]:
    """``extra`` for one log call about ``kernel_id`` made outside the kernel's handling (a background loop
    over every kernel): ``log.warning("...", extra=kernel_extra(kernel_id))``."""
    if isinstance(kernel_id, str) and _KERNEL_ID.fullmatch(kernel_id):
        return {"kernel_id": kernel_id}
    return {}


class KernelLogFilter(logging.Filter):
    """On a handler: gives each record ``kernel_id`` (or ``""``) and ``kernel`` (`` kernel=<id>`` or ``""``).

    Keeps what a record already has (``extra={"kernel_id": ...}``).  Never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        kernel_id = getattr(record, "kernel_id", "") or _kernel.get()
        record.kernel_id = kernel_id
        record.kernel = f" kernel={kernel_id}" if kernel_id else ""
        return True


def install(handler: logging.Handler) -> None:
    """Give ``handler`` the kernel tag and :data:`LOG_FORMAT` (called by ``kernelgate`` for its log handler)."""
    if not any(isinstance(f, KernelLogFilter) for f in handler.filters):
        handler.addFilter(KernelLogFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
