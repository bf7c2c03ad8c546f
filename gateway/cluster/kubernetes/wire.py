"""HTTP/1.1 as the adapter speaks it to the API server: request heads out, response heads and bodies in.

Pure functions and one decoder, no I/O: :mod:`.connection` feeds them the bytes a connection
received.  Only what an API server answers is understood: a status line, headers, and a body
framed by ``Content-Length``, by ``Transfer-Encoding: chunked`` (watches and large lists), or by
the end of the connection; anything else is a :class:`ProtocolError`.  Bodies are never
compressed (the adapter sends no ``Accept-Encoding``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

MAX_HEAD = 64 * 1024
"""Bytes a response's status line and headers may take; a longer head is refused."""


class ProtocolError(Exception):
    """The peer sent something that is not an HTTP/1.1 answer the adapter can read."""


class Framing(enum.Enum):
    """How the end of a response body is known."""

    EMPTY = "empty"  # 1xx, 204, 304, or the answer to a HEAD
    LENGTH = "length"  # Content-Length bytes
    CHUNKED = "chunked"  # Transfer-Encoding: chunked, up to the last (empty) chunk
    UNTIL_CLOSE = "until-close"  # everything until the server closes the connection


@dataclass(frozen=True)
class Head:
    """A response's status line and headers (names in lower case; a repeated header keeps its last value)."""

    status: int
    reason: str
    headers: Mapping[str, str]
    framing: Framing
    length: int
    keep_alive: bool


def request_head(method: str, target: str, host: str, headers: Mapping[str, str], body_length: int | None) -> bytes:
    """The request line and headers of one request, ready to write.

    ``target`` is the path and query (or the absolute URL, through a plain-HTTP proxy);
    values come from the adapter and the credentials, never from a notebook user, and are
    refused if they could end a header line early.
    """
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body_length is not None:
        lines.append(f"Content-Length: {body_length}")
    if any(c in line for line in lines for c in "\r\n\0"):
        raise ValueError("a request line or header holds a line break")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(data: bytes, method: str) -> Head:
    """The head of one response (``data`` ends before the blank line that ends it)."""
    try:
        text = data.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise ProtocolError("undecodable response head") from exc
    status_line, *lines = text.split("\r\n")
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:100]!r}")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ProtocolError(f"not a header line: {line[:100]!r}")
        headers[name.lower()] = value.strip()
    status = int(code)
    keep_alive = version != "HTTP/1.0" and "close" not in headers.get("connection", "").lower()
    framing, length = _framing(status, method, headers)
    if framing is Framing.UNTIL_CLOSE:
        keep_alive = False
    return Head(status, reason, headers, framing, length, keep_alive)


def _framing(status: int, method: str, headers: Mapping[str, str]) -> tuple[Framing, int]:
    # RFC 9112 section 6.3, in its order.
    if method == "HEAD" or status < 200 or status in (204, 304):
        return Framing.EMPTY, 0
    encoding = headers.get("transfer-encoding")
    if encoding is not None:
        if encoding.lower() != "chunked":
            raise ProtocolError(f"unsupported Transfer-Encoding: {encoding!r}")
        return Framing.CHUNKED, 0
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ProtocolError(f"not a Content-Length: {length!r}")
        return Framing.LENGTH, int(length)
    return Framing.UNTIL_CLOSE, 0


class ChunkedState(enum.Enum):
    SIZE = "size"  # reading a chunk-size line
    DATA = "data"  # reading a chunk's bytes
    DATA_END = "data-end"  # the CRLF after a chunk's bytes
    TRAILER = "trailer"  # trailer lines after the last chunk, up to an empty line
    DONE = "done"


class ChunkedDecoder:
    """Decodes a chunked body as it arrives.

    :meth:`feed` takes the bytes received so far (it consumes what it decodes from the
    ``bytearray``) and returns the chunk data found in them; :attr:`done` once the last chunk
    and its trailers were read.  Used by :class:`~gateway.cluster.kubernetes.connection.Connection`.
    """

    def __init__(self) -> None:
        self.state = ChunkedState.SIZE
        self._left = 0

    @property
    def done(self) -> bool:
        return self.state is ChunkedState.DONE

    def feed(self, buffer: bytearray) -> list[bytes]:
        out: list[bytes] = []
        while buffer and self.state is not ChunkedState.DONE:
            if self.state is ChunkedState.DATA:
                piece = bytes(buffer[: self._left])
                del buffer[: len(piece)]
                self._left -= len(piece)
                out.append(piece)
                if self._left == 0:
                    self.state = ChunkedState.DATA_END
                continue
            end = buffer.find(b"\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise ProtocolError("a chunk-size or trailer line is too long")
                break
            line = bytes(buffer[:end])
            del buffer[: end + 2]
            if self.state is ChunkedState.SIZE:
                size = line.split(b";", 1)[0].strip()
                try:
                    self._left = int(size, 16)
                except ValueError:
                    raise ProtocolError(f"not a chunk size: {line[:40]!r}") from None
                if self._left < 0:
                    raise ProtocolError(f"not a chunk size: {line[:40]!r}")
                self.state = ChunkedState.DATA if self._left else ChunkedState.TRAILER
            elif self.state is ChunkedState.DATA_END:
                if line:
                    raise ProtocolError("a chunk is longer than its size says")
                self.state = ChunkedState.SIZE
            elif not line:  # TRAILER: an empty line ends the body
                self.state = ChunkedState.DONE
        return out
