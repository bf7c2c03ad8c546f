"""A kernel that is not Python's as a child process of the launcher (:mod:`gateway.launcher.supervise`).

The kernel runs as the command given with ``--kernel-cmd`` (IRkernel,
almond, Toree: any Jupyter kernel taking a connection file), in a session of
its own, as jupyter_client starts local kernels: it leads its own process
group, so an interrupt reaches the kernel *and* whatever it runs, and the
launcher stays out of the way of both.  The launcher stops a kernel that
ignores polite requests, and gives the pod the kernel's own exit code.  Should the launcher be killed outright (SIGKILL, as when a container
is killed), the kernel goes with it: on Linux it is asked to receive SIGKILL
when its parent dies; elsewhere ``JPY_PARENT_PID`` makes ipykernel notice and
exit within a second.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

log = logging.getLogger("gateway.launcher")

BUSY_CHECK_SECONDS = 1.0
"""How long a kernel asked to shut down may take before it is taken to be busy and interrupted."""
SHUTDOWN_GRACE_SECONDS = 5.0
TERMINATE_GRACE_SECONDS = 3.0


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int, signum: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A pre-exec hook making the child receive ``signum`` when its parent dies (Linux only; else ``None``).

    Passed as ``preexec_fn`` by the launcher for its kernel (SIGKILL), and by the real control plane's
    launcher (``e2e.kube.launcher``) for its components (SIGTERM, so that each stops in its own way), both
    from their main thread: the kernel signals the child when the thread that forked it ends.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent_pid:  # the parent died before the request took effect
            os._exit(1)

    return hook


def exit_status(returncode: int) -> int:
    """A child's return code as a shell would report it (killed by signal n: 128+n)."""
    return 128 - returncode if returncode < 0 else returncode


class KernelProcess:
    """A running kernel (created by :meth:`start`, owned by the launcher's main loop)."""

    def __init__(self, process: asyncio.subprocess.Process, connection_info: Mapping[str, Any]) -> None:
        self._process = process
        self._connection_info = dict(connection_info)

    @classmethod
    async def start(
        cls,
        connection_file: str,
        connection_info: Mapping[str, Any],
        env: Mapping[str, str],
        command: Sequence[str],
    ) -> KernelProcess:
        """Start ``command`` (already naming ``connection_file``) on the ports and key in that file.

        Raises ``OSError`` when the command cannot be started.
        """
        child_env = dict(env)
        child_env["JPY_PARENT_PID"] = str(os.getpid())
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            env=child_env,
            start_new_session=True,
            preexec_fn=die_with_parent(os.getpid()),
        )
        log.info("kernel started as pid %d", process.pid)
        return cls(process, connection_info)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def wait(self) -> int:
        """Wait for the kernel to exit; returns its exit status."""
        return exit_status(await self._process.wait())

    def send_signal(self, signum: int) -> None:
        """Signal the kernel's process group (called for each accepted comm request)."""
        if self._process.returncode is not None:
            return
        try:
            os.killpg(self._process.pid, signum)
        except ProcessLookupError:
            pass

    async def stop(self) -> int:
        """Stop the kernel, politely first (called on shutdown requests and SIGTERM).

        A ``shutdown_request`` on the control channel lets the kernel run its
        exit handlers.  A kernel busy running code only gets to them once the
        code stops, so if it has not exited shortly it is interrupted (an idle
        kernel ignores that).  One that still does not exit gets SIGTERM, then
        SIGKILL, each to its whole process group.  Returns its exit status.
        """
        steps = (
            (None, BUSY_CHECK_SECONDS),
            (signal.SIGINT, SHUTDOWN_GRACE_SECONDS),
            (signal.SIGTERM, TERMINATE_GRACE_SECONDS),
            (signal.SIGKILL, None),
        )
        client = self._request_shutdown() if self._process.returncode is None else None
        try:
            for signum, grace in steps:
                if self._process.returncode is not None:
                    break
                if signum is not None:
                    log.info("kernel has not exited; sending %s", signal.Signals(signum).name)
                    self.send_signal(signum)
                try:
                    await asyncio.wait_for(self._process.wait(), grace)
                except asyncio.TimeoutError:
                    continue
        finally:
            if client is not None:
                client.stop_channels()
        self._reap_group()
        return await self.wait()

    def _request_shutdown(self) -> Any:
        """Send ``shutdown_request`` on the control channel; returns the client to close afterwards."""
        from jupyter_client.asynchronous import AsyncKernelClient

        client = AsyncKernelClient()
        client.load_connection_info(self._connection_info)  # type: ignore[arg-type]
        client.start_channels(shell=False, iopub=False, stdin=False, hb=False, control=True)
        client.shutdown()
        return client

    def _reap_group(self) -> None:
        # Processes the kernel started and left behind share its process group.
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
