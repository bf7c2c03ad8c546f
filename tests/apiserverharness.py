"""The simulated API server as its tests reach it: over plain HTTPS, with a bearer token.

:class:`Api` is a minimal Kubernetes REST client (every request through TLS
verified against the cluster's generated CA, as kubectl and the
``kubernetes`` client send them) and :class:`Watch` a watch stream it opened.
The ``cluster`` and ``api`` fixtures (:func:`cluster_fixture`,
:func:`api_fixture`) are a server with no node and a watch window of five
changes, and the admin's client of it.  The tests in
``tests/test_apiserver_{resources,watch,errors,auth}.py`` import them.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from fakes.serve import SimulatedCluster
from fakes.state.store import Store

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


class Api:
    """A minimal Kubernetes REST client over tornado's HTTP client (never blocks the loop)."""

    def __init__(self, cluster: SimulatedCluster, token: str | None) -> None:
        self.url = cluster.url
        self.token = token
        self.ssl = ssl.create_default_context(cadata=cluster.ca_pem.decode())
        self.http = AsyncHTTPClient(force_instance=True)

    def as_token(self, token: str | None) -> Api:
        other = Api.__new__(Api)
        other.__dict__.update(self.__dict__, token=token)
        return other

    def _request(self, method: str, path: str, body: Any, headers: dict[str, str] | None, **kwargs: Any) -> HTTPRequest:
        hdrs = {"Accept": "application/json", **(headers or {})}
        if self.token is not None:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        kwargs.setdefault("request_timeout", 10)
        return HTTPRequest(
            self.url + path, method=method, body=body, headers=hdrs, ssl_options=self.ssl,
            allow_nonstandard_methods=True, **kwargs,
        )

    async def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """``(status code, decoded JSON body or text)``."""
        response = await self.http.fetch(self._request(method, path, body, headers), raise_error=False)
        text = response.body.decode() if response.body else ""
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return response.code, json.loads(text)
        return response.code, text

    async def ok(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        code, result = await self.call(method, path, body, headers)
        assert code < 300, (code, result)
        return result

    def watch(self, path: str, headers: dict[str, str] | None = None) -> Watch:
        return Watch(self, path, headers)


class Watch:
    """A watch stream read line by line as the server sends it."""

    def __init__(self, api: Api, path: str, headers: dict[str, str] | None) -> None:
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._buffer = b""
        self.headers: dict[str, str] = {}
        request = api._request(
            "GET", path, None, headers, streaming_callback=self._chunk,
            header_callback=self._header, request_timeout=30,
        )
        self.done = asyncio.ensure_future(api.http.fetch(request, raise_error=False))

    def _header(self, line: str) -> None:
        if ":" in line:
            key, _, value = line.partition(":")
            self.headers[key.strip().lower()] = value.strip()

    def _chunk(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            if line.strip():
                self.events.put_nowait(json.loads(line))

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.events.get(), 5)

    async def finished(self) -> Any:
        return await asyncio.wait_for(self.done, 10)


@pytest.fixture(name="cluster")
async def cluster_fixture():
    async with SimulatedCluster(node_agent=False, store=Store(watch_window=5)) as c:
        yield c


@pytest.fixture(name="api")
def api_fixture(cluster):
    api = Api(cluster, cluster.admin_token)
    yield api
    api.http.close()


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}}, "data": data}


async def service_account_token(api: Api, namespace: str, name: str) -> str:
    """Create the service account ``namespace/name`` through ``api``; a token of it, from a TokenRequest."""
    await api.ok("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts",
                 {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
    code, request = await api.call("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600},
    })
    assert code == 201 and request["kind"] == "TokenRequest" and request["status"]["expirationTimestamp"]
    return request["status"]["token"]
