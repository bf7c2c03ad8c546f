"""Watch streams of the real adapter: the streaming GET read on the event loop as its events arrive.

:meth:`KubernetesCluster.watch <gateway.cluster.kubernetes.adapter.KubernetesCluster.watch>`
returns a :class:`WatchStream`; the first ``__anext__`` sends the request
(:meth:`Transport.send <gateway.cluster.kubernetes.transport.Transport.send>`), then each one
splits the chunked body into JSON lines and decodes the next event.  The adapter keeps the
streams whose request was sent in its :class:`LiveWatches`, so that closing it ends them all.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable

from gateway.cluster.interface import ServerError, ServiceUnavailable, WatchEvent
from gateway.jsoncodec import decode, encode

from .transport import Answer, raise_status

WATCH_READ_GRACE = 10.0
"""How much longer than its ``timeoutSeconds`` a watch may stay silent before the client gives up."""

UNBOUNDED_WATCH_SILENCE = 3660.0
# Without timeoutSeconds a real server ends a watch after minRequestTimeout*(1+rand) with
# minRequestTimeout 1800 s by default (k8s.io/apiserver/pkg/endpoints/handlers/get.go, ListResource);
# a stream silent for longer than that is a dead connection.


class LiveWatches:
    """The adapter's watch streams whose request was sent and whose answer has not ended."""

    def __init__(self) -> None:
        self._streams: set[WatchStream] = set()
        self.closed = False

    def add(self, stream: WatchStream) -> None:
        self._streams.add(stream)

    def discard(self, stream: WatchStream) -> None:
        self._streams.discard(stream)

    def close(self) -> None:
        """Refuse new streams and end the running ones (called by the adapter's ``close()``)."""
        self.closed = True
        for stream in list(self._streams):
            stream.interrupt()


class StreamState(enum.Enum):
    NEW = "new"  # the request is not sent yet
    OPEN = "open"  # events are being read
    ENDED = "ended"  # the server ended it, it failed, or it was closed


class WatchStream:
    """One watch request, as an async iterator of :class:`WatchEvent`.

    ``send`` sends the streaming GET and returns its answer.  ``aclose()`` (or the adapter's
    close) drops the connection: a reader waiting for the next event gets ``StopAsyncIteration``.
    """

    def __init__(self, send: Callable[[], Awaitable[Answer]], live: LiveWatches) -> None:
        self._send = send
        self._live = live
        self.state = StreamState.NEW
        self._answer: Answer | None = None
        self._lines: list[bytes] = []
        self._pending = b""

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> WatchEvent:
        if self.state is StreamState.NEW:
            await self._open()
        while not self._lines:
            if self.state is not StreamState.OPEN or self._answer is None:
                raise StopAsyncIteration
            try:
                piece = await self._answer.next_piece()
            except Exception:
                interrupted = self.state is StreamState.ENDED
                self._end()
                if interrupted:
                    raise StopAsyncIteration from None
                raise
            if piece is None:
                self._end()
                if self._pending.strip():
                    line, self._pending = self._pending, b""
                    return _decode_event(line)
                raise StopAsyncIteration
            *lines, self._pending = (self._pending + piece).split(b"\n")
            self._lines = [line for line in lines if line.strip()]
            self._lines.reverse()
        try:
            return _decode_event(self._lines.pop())
        except Exception:
            self.interrupt()
            raise

    async def _open(self) -> None:
        if self._live.closed:
            raise ServiceUnavailable("the cluster connection is closed")
        self.state = StreamState.OPEN
        try:
            answer = await self._send()
        except BaseException:
            self.state = StreamState.ENDED
            raise
        if self.state is not StreamState.OPEN or self._live.closed:  # closed while the request was on its way
            answer.close()
            self.state = StreamState.ENDED
            raise StopAsyncIteration
        if answer.status >= 400:
            self.state = StreamState.ENDED
            raise_status(answer.status, await answer.read())
        self._answer = answer
        self._live.add(self)

    async def aclose(self) -> None:
        """Stop the stream early (or clean up after its end)."""
        self.interrupt()

    async def __aenter__(self) -> WatchStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def interrupt(self) -> None:
        """End the stream now: its connection is dropped, a waiting reader stops."""
        self.state = StreamState.ENDED
        self._lines.clear()
        if self._answer is not None:
            self._answer.close()
        self._live.discard(self)

    def _end(self) -> None:
        self.state = StreamState.ENDED
        self._live.discard(self)


def _decode_event(line: bytes) -> WatchEvent:
    """One line of a watch stream; an ``ERROR`` event (a Status) is raised as our error."""
    try:
        raw = decode(line)
        kind, obj = raw["type"], raw["object"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ServerError(f"the API server sent a watch line that is not an event: {line[:200]!r}") from exc
    if kind == "ERROR":
        raise_status(int(obj.get("code") or 500), encode(obj))
    return WatchEvent(str(kind), obj)
