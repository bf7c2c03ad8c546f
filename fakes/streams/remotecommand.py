"""Exec and attach between a client's streams and the node's session, over either transport.

:class:`RemoteCommand` holds what does not depend on the transport: stdin and resize events
going to the node's session, its output coming back, and the message on the error stream once
the command has ended (``pkg/kubelet/cri/streaming/remotecommand/{httpstream,websocket}.go``).
The websocket transport (``fakes.streams.handler``) feeds it from channel messages;
:func:`serve_spdy` feeds it from SPDY streams.

The error stream carries, from protocol v4 on, a ``Status``: ``Success``, or ``Failure`` with
reason ``NonZeroExitCode`` and a cause ``ExitCode`` whose message is the code, which client-go
turns into the exit code ``kubectl exec`` exits with (``remotecommand/v4.go`` ``errorDecoderV4``;
the kubelet writes it in ``remotecommand/exec.go``).  Earlier versions carry the message as text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fakes.streams import spdy
from gateway.aio import OwnedTasks, shielded

STREAM_CREATION_SECONDS = 30.0
"""How long the client has to open the streams it asked for (the kubelet's ``streamCreationTimeout``)."""
STREAM_TYPE = "streamtype"
"""The header naming a SPDY stream's role (``v1.StreamType``, lower-cased on the wire)."""
SPDY_PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                  "channel.k8s.io"]
"""What a SPDY exec or attach may negotiate with ``X-Stream-Protocol-Version``; over SPDY v5 behaves
as v4 (its close signal is a websocket message)."""


class ContainerStream(Protocol):
    """The node's side of one exec or attach (``fakes.node.streaming.Session``)."""

    async def read(self) -> tuple[int, bytes] | None: ...
    async def write(self, data: bytes) -> None: ...
    def close_stdin(self) -> None: ...
    def resize(self, width: int, height: int) -> None: ...
    async def wait(self) -> int | None: ...
    async def close(self) -> None: ...


class NotStarted:
    """An exec whose command could not start: no output, and the error stream says why.

    A kubelet's runtime starts the command once the client's streams are open and reports a
    failure there as an ``InternalError`` (``remotecommand/exec.go`` ``ServeExec``); ``message``
    is that error's message.
    """

    def __init__(self, message: str) -> None:
        self.message = message

    async def read(self) -> tuple[int, bytes] | None:
        return None

    async def write(self, data: bytes) -> None:
        return None

    def close_stdin(self) -> None:
        return None

    def resize(self, width: int, height: int) -> None:
        return None

    async def wait(self) -> int | None:
        return None

    async def close(self) -> None:
        return None


def internal_error(message: str, *, as_status: bool) -> bytes:
    """What the error stream says of a command that could not start (``message``: an InternalError's)."""
    if not as_status:
        return message.encode()
    cause = message.removeprefix("Internal error occurred: ")
    return json.dumps({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
                       "details": {"causes": [{"message": cause}]}, "code": 500}).encode()


@dataclass(frozen=True)
class Options:
    """The streams an exec or attach asked for (``PodExecOptions``/``PodAttachOptions`` query parameters)."""

    container: str
    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def exit_status(code: int | None, command: tuple[str, ...], *, as_status: bool) -> bytes:
    """What the error stream says once the command ended with ``code`` (``None``: an attach ended)."""
    if not code:
        return json.dumps({"metadata": {}, "status": "Success"}).encode() if as_status else b""
    message = (f"command terminated with non-zero exit code: error executing command "
               f"[{' '.join(command)}], exit code {code}")
    if not as_status:
        return message.encode()
    return json.dumps({
        "metadata": {}, "status": "Failure", "message": message, "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }).encode()


class RemoteCommand:
    """One exec or attach in progress.

    The transport calls :meth:`stdin` (``b""`` at its end) and :meth:`resize` as the client's
    data arrives, and awaits :meth:`run`, which writes output through ``output(fd, data)`` and
    returns what to send on the error stream.
    """

    def __init__(self, session: ContainerStream, options: Options, *, as_status: bool,
                 output: Callable[[int, bytes], Awaitable[None]]) -> None:
        self._session = session
        self._options = options
        self._as_status = as_status
        self._output = output
        self._stdin: asyncio.Queue[bytes] = asyncio.Queue()
        self._resize = bytearray()
        self._tasks = OwnedTasks("remote command")
        self._stdin_ended = False

    def stdin(self, data: bytes) -> None:
        if not self._stdin_ended:
            self._stdin_ended = not data
            self._stdin.put_nowait(data)

    def resize(self, data: bytes) -> None:
        """Resize events are JSON objects ``{"Width": w, "Height": h}``, one after another on the stream."""
        self._resize += data
        decoder = json.JSONDecoder()
        while self._resize:
            text = self._resize.decode(errors="replace").lstrip()
            try:
                event, end = decoder.raw_decode(text)
            except ValueError:
                if len(self._resize) > 4096:  # not JSON at all: drop it rather than grow without end
                    self._resize.clear()
                return
            self._resize = bytearray(text[end:].encode())
            if isinstance(event, dict):
                with contextlib.suppress(TypeError, ValueError):
                    self._session.resize(int(event.get("Width", 0)), int(event.get("Height", 0)))

    async def _pump_stdin(self) -> None:
        while data := await self._stdin.get():
            await self._session.write(data)
        self._session.close_stdin()

    async def run(self) -> bytes:
        """Relay until the session's output ends and the command has exited; the error-stream message."""
        self._tasks.spawn(self._pump_stdin(), "stdin")
        try:
            while (item := await self._session.read()) is not None:
                fd, data = item
                wanted = self._options.stdout if fd == 1 else self._options.stderr
                if wanted and data:
                    await self._output(fd, data)
            if isinstance(self._session, NotStarted):
                return internal_error(self._session.message, as_status=self._as_status)
            code = await self._session.wait()
        finally:
            await self._tasks.cancel_all()
            await shielded(self._session.close())
        return exit_status(code, self._options.command, as_status=self._as_status)


async def serve_spdy(connection: spdy.Session, session: ContainerStream, options: Options, version: str) -> None:
    """Run an exec or attach over a SPDY connection whose protocol ``version`` was negotiated.

    Waits for the streams the options ask for (error, then stdin, stdout, stderr, and resize with a
    terminal, as ``remotecommand/httpstream.go`` ``waitForStreams`` does), relays, writes the exit
    status on the error stream and half-closes every stream.
    """
    streams = await _wait_for_streams(connection, options, resizes=version not in ("channel.k8s.io", "v2.channel.k8s.io"))
    if streams is None:
        await session.close()
        return
    as_status = version in ("v4.channel.k8s.io", "v5.channel.k8s.io")

    async def output(fd: int, data: bytes) -> None:
        stream = streams.get("stdout" if fd == 1 else "stderr")
        if stream is not None:
            await stream.write(data)

    command = RemoteCommand(session, options, as_status=as_status, output=output)
    tasks = OwnedTasks("spdy exec streams")
    if "stdin" in streams:
        tasks.spawn(_relay(streams["stdin"], command.stdin, end=True), "stdin")
    if "resize" in streams:
        tasks.spawn(_relay(streams["resize"], command.resize, end=False), "resize")
    try:
        message = await command.run()
        if message:
            await streams["error"].write(message)
        for stream in streams.values():
            await stream.close()
    finally:
        await tasks.cancel_all()


async def _relay(stream: spdy.Stream, deliver: Callable[[bytes], Any], *, end: bool) -> None:
    while data := await stream.read():
        deliver(data)
    if end:
        deliver(b"")


async def _wait_for_streams(connection: spdy.Session, options: Options, *, resizes: bool) -> dict[str, spdy.Stream] | None:
    expected = {"error"}
    expected |= {name for name, wanted in (("stdin", options.stdin), ("stdout", options.stdout),
                                           ("stderr", options.stderr), ("resize", options.tty and resizes)) if wanted}
    streams: dict[str, spdy.Stream] = {}

    async def gather() -> bool:
        while not expected <= streams.keys():
            stream = await connection.accept()
            if stream is None:
                return False
            streams[stream.headers.get(STREAM_TYPE, "")] = stream
        return True

    try:
        complete = await asyncio.wait_for(gather(), STREAM_CREATION_SECONDS)
    except asyncio.TimeoutError:
        complete = False
    return streams if complete else None
