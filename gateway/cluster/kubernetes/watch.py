"""Watch streams of the real adapter: a reader thread per watch, its events handed to the event loop.

:meth:`KubernetesCluster.watch <gateway.cluster.kubernetes.adapter.KubernetesCluster.watch>`
returns a :class:`WatchStream`; the first ``__anext__`` starts its reader thread, which sends
the streaming GET (:func:`~gateway.cluster.kubernetes.transport.send`), splits the chunked body
into JSON lines and posts each decoded event to the loop.  The adapter keeps the streams whose
thread runs in its :class:`LiveWatches`, so that closing it ends them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import urllib3

from gateway.cluster.interface import ClusterError, ServerError, ServiceUnavailable, WatchEvent

from .transport import THREAD_PREFIX, raise_status, transport_error

WATCH_READ_GRACE = 10.0
"""How much longer than its ``timeoutSeconds`` a watch may stay silent before the client gives up."""

UNBOUNDED_WATCH_SILENCE = 3660.0
# Without timeoutSeconds a real server ends a watch after minRequestTimeout*(1+rand) with
# minRequestTimeout 1800 s by default (k8s.io/apiserver/pkg/endpoints/handlers/get.go, ListResource);
# a stream silent for longer than that is a dead connection.


class LiveWatches:
    """The adapter's watch streams whose reader thread was started and has not been joined."""

    def __init__(self) -> None:
        self._streams: set[WatchStream] = set()
        self.closed = False

    def add(self, stream: WatchStream) -> None:
        self._streams.add(stream)

    def discard(self, stream: WatchStream) -> None:
        self._streams.discard(stream)

    def close(self) -> list[threading.Thread]:
        """Refuse new streams and interrupt the running ones (called by the adapter's ``close()``).

        Returns their reader threads, for the caller to join off the loop.
        """
        self.closed = True
        streams = list(self._streams)
        for stream in streams:
            stream.interrupt()
        return [stream.thread for stream in streams if stream.thread is not None]


class WatchStream:
    """One watch request, as an async iterator of :class:`WatchEvent`.

    ``send`` sends the streaming GET and returns the unread response (it runs in the reader
    thread); ``connect_timeout`` bounds how long joining the thread may take.  ``aclose()``
    shuts the socket down so the thread's blocked read returns at once, then waits for the
    thread to end.
    """

    def __init__(self, send: Callable[[], Any], live: LiveWatches, *, connect_timeout: float) -> None:
        self._send = send
        self._live = live
        self._connect_timeout = connect_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._interrupted = False
        self._finished = False

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> WatchEvent:
        if self._finished:
            raise StopAsyncIteration
        if self.thread is None:
            self._start()
        kind, value = await self._queue.get()
        if kind == "event":
            return value  # type: ignore[no-any-return]
        self._finished = True
        await self._join()
        if kind == "error":
            raise value
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop the stream early (or clean up after its end); returns once the reader thread is gone."""
        self._finished = True
        self.interrupt()
        await self._join()

    async def __aenter__(self) -> WatchStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _start(self) -> None:
        if self._live.closed:
            raise ServiceUnavailable("the cluster connection is closed")
        self._loop = asyncio.get_running_loop()
        self.thread = threading.Thread(target=self._read, name=f"{THREAD_PREFIX}-watch", daemon=True)
        self._live.add(self)
        self.thread.start()

    async def _join(self) -> None:
        thread = self.thread
        if thread is not None and thread.is_alive():
            # The thread is at its last steps (or its socket was just shut down).
            await asyncio.to_thread(thread.join, self._connect_timeout + 1)
        self._live.discard(self)

    def interrupt(self) -> None:
        """Make the reader thread stop: shut its socket down so a blocked read returns."""
        with self._lock:
            self._interrupted = True
            sock = self._socket
        if sock is None:
            return  # not connected yet: the thread sees the flag once its request returns
        # The plain socket's shutdown, not SSLSocket.shutdown: that one unwraps TLS, and a
        # read racing it would then take ciphertext for plain HTTP.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

    # -- the reader thread

    def _post(self, kind: str, value: Any = None) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed under us: nobody is listening
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))

    def _read(self) -> None:
        response = None
        try:
            response = self._send()
            # This connection ends with the watch (closed below, shut down by interrupt()), so
            # urllib3 must not hand it back to the pool when the body ends.
            response.response._pool = None
            with self._lock:
                if self._interrupted:
                    return
                self._socket = getattr(response.response.connection, "sock", None)
            if response.status >= 400:
                raise_status(response.status, response.read(), response)
            pending = b""
            for chunk in _chunks(response.response):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        self._post("event", _decode_event(line))
            if pending.strip():
                self._post("event", _decode_event(pending))
        except Exception as exc:
            if not self._interrupted:
                error = exc if isinstance(exc, ClusterError) else transport_error(exc)
                if error is not exc:
                    error.__cause__ = exc
                self._post("error", error)
        finally:
            with self._lock:
                self._socket = None
            if response is not None:
                with contextlib.suppress(Exception):
                    response.response.close()
            self._post("end")


def _chunks(response: urllib3.HTTPResponse) -> Iterator[bytes]:
    """The body as it arrives: each HTTP chunk (watches are chunked), else whatever one read returns."""
    if response.chunked and response.supports_chunked_reads():
        yield from response.read_chunked(None, decode_content=True)
        return
    while data := response.read1(65536):
        yield data


def _decode_event(line: bytes) -> WatchEvent:
    """One line of a watch stream; an ``ERROR`` event (a Status) is raised as our error."""
    try:
        raw = json.loads(line)
        kind, obj = raw["type"], raw["object"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ServerError(f"the API server sent a watch line that is not an event: {line[:200]!r}") from exc
    if kind == "ERROR":
        raise_status(int(obj.get("code") or 500), json.dumps(obj))
    return WatchEvent(str(kind), obj)
