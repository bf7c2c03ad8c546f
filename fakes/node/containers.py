"""Container processes on the simulated node: start, wait, signal, kill, and their log files.

Used by the pod worker (``fakes.node.podworker``).  A container is one local process
started in a new session, so it leads its own process group and a signal sent
to the group reaches everything the container started, as it would reach every
process in a container's PID namespace.  stdout and stderr both go to one log
file per container attempt, which ``kubectl logs`` reads back through
:func:`read_log`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

OCI_START_FAILED = "failed to create containerd task: failed to create shim task: OCI runtime create failed: " \
    "runc create failed: unable to start container process: "
"""The prefix containerd gives a container that could not start (reason ``StartError``, exit code 128)."""

START_ERROR_EXIT_CODE = 128
KILL_TIMEOUT = 10.0
"""Seconds to wait for SIGKILLed processes to exit; only an unkillable (D-state) process takes longer."""


class StartFailure(Exception):
    """The process could not be started; ``message`` reads like containerd's for the same failure."""


def exit_code(returncode: int) -> int:
    """A container's exit code: a process killed by signal N reports 128+N, as container runtimes do."""
    return 128 - returncode if returncode < 0 else returncode


class ContainerProcess:
    """One running container: a process group led by ``pid``, logging to ``log_path``."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self._proc = proc
        self.log_path = log_path
        self.pid = proc.pid
        self.oom_killed = False
        self._killing: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, argv: list[str], env: Mapping[str, str], cwd: Path, log_path: Path,
        *, wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> ContainerProcess:
        """Start ``argv`` with exactly ``env`` in ``cwd``; raise :class:`StartFailure` as runc would fail.

        ``wrap`` turns the argv (its program already found on the container's ``PATH``) into the
        one to execute: the pod's sandbox (``fakes.node.sandbox``), which then executes it in place.
        """
        if not argv:
            raise StartFailure(OCI_START_FAILED + "no command specified: unknown")
        fd = _prepare(cwd, log_path)
        if wrap is not None:
            try:
                argv = wrap([await asyncio.to_thread(_find_program, argv[0], env, cwd), *argv[1:]])
            except BaseException:
                os.close(fd)
                raise
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=dict(env), cwd=str(cwd), stdin=asyncio.subprocess.DEVNULL,
                stdout=fd, stderr=fd, start_new_session=True,
            )
        except FileNotFoundError as err:
            raise StartFailure(OCI_START_FAILED + f'exec: "{argv[0]}": executable file not found in $PATH: unknown') from err
        except PermissionError as err:
            raise StartFailure(OCI_START_FAILED + f'exec: "{argv[0]}": permission denied: unknown') from err
        except OSError as err:
            raise StartFailure(OCI_START_FAILED + f'exec: "{argv[0]}": {(err.strerror or str(err)).lower()}: unknown') from err
        finally:
            os.close(fd)
        return cls(proc, log_path)

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    async def exited(self) -> None:
        """Return once the main process has exited (for followers of its log; :meth:`wait` reaps its group)."""
        await self._proc.wait()

    async def wait(self) -> int:
        """Wait for the container's main process to exit; return its exit code (128+N for signal N).

        When it exits, what is left of its process group is killed, as a runtime
        tears down a container whose init process died.
        """
        returncode = await self._proc.wait()
        await self._kill_group()
        return exit_code(returncode)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group (a no-op when it is already gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def oom_kill(self) -> None:
        """Kill the container as the kernel's OOM killer would: SIGKILL, reported as ``OOMKilled``."""
        self.oom_killed = True
        self.signal(signal.SIGKILL)

    def terminate(self, grace_seconds: float, hurry: asyncio.Event | None = None) -> asyncio.Task[None]:
        """Stop the container: SIGTERM, then SIGKILL after ``grace_seconds`` or as soon as ``hurry`` is set.

        Returns the task doing it; calling again while it runs returns the same task.
        """
        if self._killing is None:
            self._killing = asyncio.create_task(self._terminate(grace_seconds, hurry))
        return self._killing

    async def _terminate(self, grace_seconds: float, hurry: asyncio.Event | None) -> None:
        if self._proc.returncode is None:
            self.signal(signal.SIGTERM)
            exited: asyncio.Future[Any] = asyncio.ensure_future(self._proc.wait())
            waiters: set[asyncio.Future[Any]] = {exited}
            hurried: asyncio.Future[Any] | None = asyncio.ensure_future(hurry.wait()) if hurry is not None else None
            if hurried is not None:
                waiters.add(hurried)
            try:
                await asyncio.wait(waiters, timeout=max(0.0, grace_seconds), return_when=asyncio.FIRST_COMPLETED)
            finally:
                if hurried is not None:
                    hurried.cancel()
            if not exited.done():
                exited.cancel()
        self.signal(signal.SIGKILL)
        # After SIGKILL the process exits at once; the bound only guards against an unkillable (D-state) process.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._proc.wait(), timeout=KILL_TIMEOUT)

    async def _kill_group(self) -> None:
        """SIGKILL what is left of the process group and wait until those processes have exited.

        They are not our children, so each is awaited through a pidfd (readable once the process
        has exited), opened before the signal is sent.
        """
        members = await asyncio.to_thread(_group_members, self.pid)
        fds = []
        for pid in members:
            with contextlib.suppress(OSError, AttributeError):  # gone already, or no pidfd on this system
                fds.append(os.pidfd_open(pid))
        self.signal(signal.SIGKILL)
        if not fds:
            return
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[None]] = []
        for fd in fds:
            exited: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _resolve, exited)
            waiters.append(exited)
        try:
            await asyncio.wait(waiters, timeout=KILL_TIMEOUT)
        finally:
            for fd in fds:
                loop.remove_reader(fd)
                os.close(fd)


def _find_program(program: str, env: Mapping[str, str], cwd: Path) -> str:
    """The program ``execvpe`` would run for ``program`` with ``env``'s ``PATH``; :class:`StartFailure` as runc says."""
    if "/" in program:
        path = Path(program) if os.path.isabs(program) else cwd / program
        if not path.exists():
            raise StartFailure(OCI_START_FAILED + f'exec: "{program}": executable file not found in $PATH: unknown')
        if not os.access(path, os.X_OK):
            raise StartFailure(OCI_START_FAILED + f'exec: "{program}": permission denied: unknown')
        return program
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        raise StartFailure(OCI_START_FAILED + f'exec: "{program}": executable file not found in $PATH: unknown')
    return found


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _group_members(pgid: int) -> list[int]:
    """The processes in process group ``pgid``, from /proc (called in a worker thread)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state, ppid, pgrp (proc(5)); zombies have exited already.
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def _prepare(cwd: Path, log_path: Path) -> int:
    """Create the working directory (runc creates a missing one) and open the log for appending."""
    try:
        cwd.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = (err.strerror or str(err)).lower()
        raise StartFailure(OCI_START_FAILED + f'chdir to cwd ("{cwd}") set in config.json failed: {reason}: unknown') from err
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def read_log(path: Path, tail_lines: int | None = None) -> str:
    """The text of a container log, or its last ``tail_lines`` lines (called by the log reader of the agent)."""
    try:
        with open(path, "rb") as f:
            if tail_lines is None:
                data = f.read()
            else:
                data = _tail(f, tail_lines)
    except FileNotFoundError:
        return ""
    return data.decode(errors="replace")


def _tail(f, lines: int) -> bytes:
    """The last ``lines`` lines of binary file ``f``, reading backwards in blocks."""
    if lines <= 0:
        return b""
    end = f.seek(0, os.SEEK_END)
    pos, chunks, newlines = end, [], 0
    while pos > 0 and newlines <= lines:
        step = min(8192, pos)
        pos -= step
        f.seek(pos)
        block = f.read(step)
        chunks.append(block)
        newlines += block.count(b"\n")
    data = b"".join(reversed(chunks))
    body = data[:-1] if data.endswith(b"\n") else data
    kept = body.split(b"\n")[-lines:]
    return b"\n".join(kept) + (b"\n" if data.endswith(b"\n") else b"")
