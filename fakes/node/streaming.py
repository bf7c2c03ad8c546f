"""The node's streaming server: exec, attach, port-forward and followed logs of the pods it runs.

A kubelet serves these at ``/exec``, ``/attach``, ``/portForward`` and ``/containerLogs`` of its
own API, and the API server proxies ``pods/exec``, ``pods/attach``, ``pods/portforward`` and
``pods/log?follow=true`` there (``pkg/kubelet/server/server.go``).  :class:`NodeStreaming` is that
server's core, without a transport: each call returns an object the caller streams through
whichever wire protocol its client speaks (``fakes.apiserver.streaming`` does so for the
simulated API server, which reaches it through the node's entry in its ``kubelets``), and
``fakes.node.kubeletapi`` does over HTTPS as the kubelet's API, for a real API server.

Errors are :mod:`gateway.cluster.interface` errors whose messages are the kubelet's.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import shutil
import signal
import struct
import termios
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fakes.node.containers import ContainerProcess, exit_code
from fakes.node.logfollow import follow
from fakes.node.podworker import PodWorker
from gateway.aio import OwnedTasks, shielded
from gateway.cluster.interface import BadRequest, NotFound, ServerError

STDOUT, STDERR = 1, 2
CHUNK = 32 * 1024
EXEC_FAILED = "Internal error occurred: error executing command in container: OCI runtime exec failed: exec failed: " \
    "unable to start container process: "
"""How the API server reports a command runc could not start in a running container."""


class ExecFailed(ServerError):
    """A command the runtime could not start in a running container (the message is :data:`EXEC_FAILED`'s).

    The simulated API server answers it before upgrading; a kubelet's runtime starts the command
    after the upgrade and says so on the error stream (``fakes.node.kubeletapi``)."""


class Session:
    """One exec or attach: the caller writes stdin, reads output, and learns how it ended.

    ``read()`` returns ``(STDOUT or STDERR, data)`` until the output ends, then ``None``;
    ``wait()`` returns the command's exit code (``None`` for an attach, which ends with its
    container and has none of its own); ``close()`` ends it early (the client went away).
    """

    def __init__(self, forget: Callable[[Session], None]) -> None:
        self._output: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self._tasks = OwnedTasks("streaming session")
        self._forget = forget

    async def read(self) -> tuple[int, bytes] | None:
        return await self._output.get()

    async def write(self, data: bytes) -> None:
        """Stdin from the client (dropped when the session has none)."""

    def close_stdin(self) -> None:
        """The client's stdin ended."""

    def resize(self, width: int, height: int) -> None:
        """The client's terminal changed size."""

    async def wait(self) -> int | None:
        return None

    async def close(self) -> None:
        self._forget(self)
        await self._tasks.cancel_all()


class ExecSession(Session):
    """A command running in a container's environment, on pipes or on a terminal."""

    def __init__(self, forget: Callable[[Session], None], proc: asyncio.subprocess.Process,
                 master: int | None) -> None:
        super().__init__(forget)
        self._proc = proc
        self._master = master
        pumps = []
        if master is not None:
            pumps.append(self._tasks.spawn(self._pump_terminal(master), "exec terminal"))
        else:
            for fd, stream in ((STDOUT, proc.stdout), (STDERR, proc.stderr)):
                if stream is not None:
                    pumps.append(self._tasks.spawn(self._pump(fd, stream), f"exec fd {fd}"))
        self._tasks.spawn(self._end_output(pumps), "exec output end")

    async def _pump(self, fd: int, stream: asyncio.StreamReader) -> None:
        while data := await stream.read(CHUNK):
            self._output.put_nowait((fd, data))

    async def _pump_terminal(self, master: int) -> None:
        """Read the terminal until every process holding it has gone (EIO)."""
        loop = asyncio.get_running_loop()
        readable: asyncio.Queue[None] = asyncio.Queue()
        loop.add_reader(master, readable.put_nowait, None)
        try:
            while True:
                await readable.get()
                try:
                    data = os.read(master, CHUNK)
                except BlockingIOError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                self._output.put_nowait((STDOUT, data))
        finally:
            loop.remove_reader(master)

    async def _end_output(self, pumps: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*pumps, return_exceptions=True)
        self._output.put_nowait(None)

    async def write(self, data: bytes) -> None:
        if self._master is not None:
            await _write_all(self._master, data)
        elif self._proc.stdin is not None and not self._proc.stdin.is_closing():
            with contextlib.suppress(ConnectionError):
                self._proc.stdin.write(data)
                await self._proc.stdin.drain()

    def close_stdin(self) -> None:
        if self._master is not None:
            # A terminal has no end of file of its own: ^D at the start of a line is what reads as one.
            with contextlib.suppress(OSError):
                os.write(self._master, b"\x04")
        elif self._proc.stdin is not None:
            self._proc.stdin.close()

    def resize(self, width: int, height: int) -> None:
        if self._master is not None and width > 0 and height > 0:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    async def wait(self) -> int | None:
        return exit_code(await self._proc.wait())

    async def close(self) -> None:
        """Kill what the command started and wait for it (a runtime ends an exec's processes with it)."""
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
        await shielded(self._proc.wait())
        await super().close()
        if self._master is not None:
            os.close(self._master)
            self._master = None


class AttachSession(Session):
    """A container's output from now on, until the container exits (its stdin is not open here)."""

    def __init__(self, forget: Callable[[Session], None], log_path: Path, process: ContainerProcess) -> None:
        super().__init__(forget)
        exited = self._tasks.spawn(process.exited(), "attached container")
        self._tasks.spawn(self._pump(log_path, exited), "attach output")

    async def _pump(self, log_path: Path, exited: asyncio.Future[None]) -> None:
        try:
            async for data in follow(log_path, exited):
                self._output.put_nowait((STDOUT, data))
        finally:
            self._output.put_nowait(None)


async def _write_all(fd: int, data: bytes) -> None:
    """Write ``data`` to the non-blocking terminal ``fd``, waiting while its buffer is full."""
    loop = asyncio.get_running_loop()
    while data:
        try:
            written = os.write(fd, data)
        except BlockingIOError:
            writable: asyncio.Future[None] = loop.create_future()
            loop.add_writer(fd, _resolve, writable)
            try:
                await writable
            finally:
                loop.remove_writer(fd)
            continue
        except OSError:
            return
        data = data[written:]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _find_program(program: str, path: str | None, cwd: Path) -> str | None:
    """The file ``program`` names on the container's ``PATH`` (or relative to its working directory)."""
    if "/" in program:
        return program if os.path.exists(program if os.path.isabs(program) else cwd / program) else None
    return shutil.which(program, path=path)


def _controlling_terminal() -> None:
    """In the child, after ``setsid``: make its stdin (the terminal) its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class NodeStreaming:
    """The streaming endpoints of one node agent; ``worker(namespace, name)`` finds a pod's worker."""

    def __init__(self, worker: Callable[[str, str], PodWorker | None]) -> None:
        self._worker = worker
        self._sessions: set[Session] = set()

    # ---------------------------------------------------------------- lookup

    def _running(self, namespace: str, pod: str, container: str) -> tuple[PodWorker, str]:
        worker = self._worker(namespace, pod)
        if worker is None:
            raise NotFound(f'pod "{pod}" not found on this node')
        proc = worker.processes.get(container)
        if proc is None or proc.returncode is not None or container not in worker.exec_env:
            raise ServerError(f'container not found ("{container}")')
        return worker, container

    # ---------------------------------------------------------------- exec and attach

    async def exec(self, namespace: str, pod: str, container: str, command: list[str], *,
                   stdin: bool, tty: bool) -> Session:
        """Start ``command`` in ``container`` with the container's environment, working directory and
        sandbox (a terminal when ``tty``); :class:`ServerError` when it cannot start."""
        worker, container = self._running(namespace, pod, container)
        if not command:
            raise BadRequest("you must specify at least 1 command")
        env, cwd = worker.exec_env[container]
        program = command[0]
        found = await asyncio.to_thread(_find_program, program, env.get("PATH"), cwd)
        if found is None:
            raise ExecFailed(EXEC_FAILED + f'exec: "{program}": executable file not found in $PATH: unknown')
        argv = worker.sandbox.command([found, *command[1:]], env, container)
        master: int | None = None
        try:
            if tty:
                master, slave = pty.openpty()
                os.set_blocking(master, False)
                try:
                    proc = await asyncio.create_subprocess_exec(
                        *argv, env=env, cwd=str(cwd), stdin=slave, stdout=slave, stderr=slave,
                        start_new_session=True, preexec_fn=_controlling_terminal,
                    )
                finally:
                    os.close(slave)
            else:
                proc = await asyncio.create_subprocess_exec(
                    *argv, env=env, cwd=str(cwd), stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
                )
        except OSError as err:
            if master is not None:
                os.close(master)
            raise ExecFailed(EXEC_FAILED + f'exec: "{program}": {(err.strerror or str(err)).lower()}: unknown') from err
        return self._opened(ExecSession(self._sessions.discard, proc, master))

    def attach(self, namespace: str, pod: str, container: str) -> Session:
        """The running ``container``'s output from now on, until it exits."""
        worker, container = self._running(namespace, pod, container)
        path = worker.log_path(container)
        assert path is not None
        return self._opened(AttachSession(self._sessions.discard, path, worker.processes[container]))

    def _opened(self, session: Session) -> Session:
        self._sessions.add(session)
        return session

    async def close_all(self) -> None:
        """End every open session (the node agent stops)."""
        await asyncio.gather(*(s.close() for s in list(self._sessions)), return_exceptions=True)

    # ---------------------------------------------------------------- port-forward and logs

    async def port_forward(self, namespace: str, pod: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to ``port`` on the pod's address, as the kubelet dials it inside the pod's network."""
        worker = self._worker(namespace, pod)
        if worker is None or worker.pod_ip is None:
            raise NotFound(f'pod "{pod}" not found on this node')
        try:
            return await asyncio.open_connection(worker.pod_ip, port)
        except OSError as err:
            reason = (os.strerror(err.errno) if err.errno else str(err)).lower()
            raise ServerError(f"failed to connect to {worker.pod_ip}:{port} inside the pod's network: "
                              f"dial tcp4 {worker.pod_ip}:{port}: connect: {reason}") from err

    async def follow_log(self, namespace: str, pod: str, container: str,
                         tail_lines: int | None) -> AsyncIterator[bytes]:
        """The container's log (its last ``tail_lines`` lines when given), then what it writes until it exits."""
        worker = self._worker(namespace, pod)
        path = worker.log_path(container) if worker is not None else None
        if worker is None or path is None:
            return
        proc = worker.processes.get(container)
        exited: asyncio.Future[Any]
        if proc is None or proc.returncode is not None:
            exited = asyncio.get_running_loop().create_future()
            exited.set_result(None)
        else:
            exited = asyncio.ensure_future(proc.exited())
        try:
            size = await asyncio.to_thread(_size, path)
            head = await asyncio.to_thread(_head, path, size, tail_lines)
            if head:
                yield head
            async for data in follow(path, exited, offset=size):
                yield data
        finally:
            exited.cancel()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _head(path: Path, size: int, tail_lines: int | None) -> bytes:
    """The first ``size`` bytes of the log, or their last ``tail_lines`` lines (a worker thread's read)."""
    try:
        with open(path, "rb") as f:
            data = f.read(size)
    except FileNotFoundError:
        return b""
    if tail_lines is None:
        return data
    if tail_lines <= 0:
        return b""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-tail_lines:])
