"""The round-robin front the replica tests put before gateway replicas (``tests/front.py``) does what a Service does.

Over two plain HTTP servers: successive requests and websockets alternate between them; a
server that refuses connections is skipped; its websockets end when it goes away; with no
server left a client's connection is closed at once rather than held; stopping the front
leaves nothing running (``tests/conftest.py`` checks the loop's tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.simple_httpclient import HTTPStreamClosedError
from tornado.web import Application, RequestHandler
from tornado.websocket import WebSocketHandler, websocket_connect

from tests.front import Address, RoundRobinFront
from tests.replicawatch import closed

WAIT = 30.0


class _Name(RequestHandler):
    def initialize(self, name: str) -> None:
        self.name = name

    def get(self) -> None:
        self.write(self.name)


class _NameSocket(WebSocketHandler):
    def initialize(self, name: str, sockets: list[WebSocketHandler]) -> None:
        self.name = name
        sockets.append(self)

    def open(self) -> None:  # type: ignore[override]
        self.write_message(self.name)


@contextlib.asynccontextmanager
async def named_backend(name: str) -> AsyncIterator[tuple[Address, Callable[[], Awaitable[None]]]]:
    """An HTTP server answering ``name`` on ``/`` and on a websocket at ``/ws``; its address and its stop."""
    websockets: list[WebSocketHandler] = []
    server = HTTPServer(Application([("/", _Name, {"name": name}),
                                     ("/ws", _NameSocket, {"name": name, "sockets": websockets})]))
    sockets = bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    stopped = False

    async def stop() -> None:
        """Close the listener (connections are refused from now on) and every connection, as a dying process."""
        nonlocal stopped
        if not stopped:
            stopped = True
            server.stop()
            for websocket in websockets:
                websocket.close()
            await asyncio.wait_for(server.close_all_connections(), WAIT)

    try:
        yield ("127.0.0.1", sockets[0].getsockname()[1]), stop
    finally:
        await stop()


async def fetch(url: str) -> tuple[int, str]:
    response = await AsyncHTTPClient().fetch(HTTPRequest(url, connect_timeout=WAIT, request_timeout=WAIT),
                                             raise_error=False)
    return response.code, (response.body or b"").decode()


async def test_the_front_alternates_between_backends_and_skips_one_that_refuses() -> None:
    async with named_backend("a") as (a, stop_a), named_backend("b") as (b, stop_b):
        front = RoundRobinFront([a, b], connect_timeout=2.0)
        await front.start()
        try:
            assert [await fetch(front.url + "/") for _ in range(4)] == [(200, "a"), (200, "b")] * 2
            ws = [await asyncio.wait_for(websocket_connect(front.url.replace("http", "ws") + "/ws"), WAIT)
                  for _ in range(2)]
            assert [await asyncio.wait_for(w.read_message(), WAIT) for w in ws] == ["a", "b"]
            assert [len(front.open_to(0)), len(front.open_to(1))] == [1, 1]
            assert [c.request_line for c in front.connections] == ["GET / HTTP/1.1"] * 4 + ["GET /ws HTTP/1.1"] * 2

            await stop_b()  # b refuses connections from now on; its websocket ends
            await closed(ws[1], WAIT)
            seen = len(front.connections)
            assert [await fetch(front.url + "/") for _ in range(3)] == [(200, "a")] * 3
            assert [c.backend for c in front.connections[seen:]] == [0, 0, 0]

            await stop_a()  # no backend left: a client's connection is closed at once, not held
            with pytest.raises(HTTPStreamClosedError):
                await fetch(front.url + "/")
            await closed(ws[0], WAIT)
            assert front.open_to(0) == front.open_to(1) == []
        finally:
            await front.stop()
