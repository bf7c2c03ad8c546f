"""No token in any log line: the access log hides ``?token=`` values, at every status.

Clients pass ``EG_AUTH_TOKEN`` in the query string where they cannot set a header (websockets
from browsers); tornado's own access log would write it in clear.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tornado import httpserver, netutil, web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from gateway.http.routes import log_request
from tests.httpharness import running_gateway

SECRET = "s3cret-Token-Value"


class _Echo(web.RequestHandler):
    def get(self) -> None:
        if self.get_query_argument("token", "") != SECRET:
            raise web.HTTPError(401)
        self.write("ok")


@pytest.fixture
async def served():
    app = web.Application([(r"/api/echo", _Echo)], log_function=log_request)
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    server.stop()
    await server.close_all_connections()


@pytest.mark.parametrize(("query", "status"), [
    (f"?token={SECRET}", 200), (f"?a=1&token={SECRET}&b=2", 200), (f"?TOKEN={SECRET}", 401),
    ("?token=wrong-" + SECRET, 401),
])
async def test_the_access_log_hides_query_tokens(served: str, caplog: pytest.LogCaptureFixture, query: str,
                                                 status: int) -> None:
    caplog.set_level(logging.DEBUG)
    client = AsyncHTTPClient()
    try:
        answer = await client.fetch(f"{served}/api/echo{query}", raise_error=False)
    finally:
        client.close()
    assert answer.code == status
    lines = [r.getMessage() for r in caplog.records if r.name == "tornado.access"]
    assert len(lines) == 1 and f"{status} GET /api/echo?" in lines[0] and "token=[hidden]" in lines[0].lower()
    assert SECRET not in caplog.text


@pytest.mark.slow
async def test_the_gateway_logs_no_token_it_was_given(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_gateway(tmp_path, auth_token=SECRET) as gw:
        client = AsyncHTTPClient()
        try:
            ok = await client.fetch(f"{gw.url}/api/kernels?token={SECRET}")
            with pytest.raises(HTTPClientError) as refused:
                await client.fetch(f"{gw.url}/api/kernels?token=not-{SECRET}")
        finally:
            client.close()
    assert ok.code == 200 and refused.value.code == 401
    assert any(r.name == "tornado.access" for r in caplog.records)
    assert SECRET not in caplog.text
