"""The adapter's own HTTP/1.1 client: what it reads, what it sends again and what it never does.

Small servers written here answer as a real API server might on a bad day (a kept-alive
connection closed under the client, a chunked body cut anywhere, a proxy in the way); the
adapter must read every well-formed answer, reuse connections, replay only what is safe to
replay, and turn everything else into one of our errors.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.client import ApiClient, Configuration

from fakes.serve import SimulatedCluster
from gateway.cluster import interface as i
from gateway.cluster.kubernetes import KubernetesCluster
from gateway.cluster.kubernetes.wire import ChunkedDecoder, Framing, ProtocolError, parse_head, request_head

TIMEOUT = 10.0
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


# ------------------------------------------------------------------ the wire


def chunked(body: bytes, sizes: list[int]) -> bytes:
    out, rest = b"", body
    for size in sizes:
        if not rest:
            break
        piece, rest = rest[:size], rest[size:]
        out += f"{len(piece):x};ext=1\r\n".encode() + piece + b"\r\n"
    if rest:
        out += f"{len(rest):X}\r\n".encode() + rest + b"\r\n"
    return out + b"0\r\nX-Trailer: yes\r\n\r\n"


@given(body=st.binary(max_size=300), sizes=st.lists(st.integers(1, 50), max_size=10),
       cuts=st.lists(st.integers(0, 400), max_size=8))
def test_a_chunked_body_decodes_however_it_arrives(body: bytes, sizes: list[int], cuts: list[int]) -> None:
    wire = chunked(body, sizes) + b"next answer"
    decoder, buffer, out, taken = ChunkedDecoder(), bytearray(), b"", 0
    for end in [*sorted(cuts), len(wire)]:
        if decoder.done:
            break
        buffer += wire[taken:max(taken, end)]
        taken = max(taken, end)
        out += b"".join(decoder.feed(buffer))
    assert decoder.done and out == body
    assert bytes(buffer) + wire[taken:] == b"next answer"  # what follows the body is left for the next answer


@pytest.mark.parametrize("wire", [b"zz\r\nab\r\n", b"2\r\nabc\r\n", b"-1\r\n"])
def test_a_malformed_chunk_is_a_protocol_error(wire: bytes) -> None:
    with pytest.raises(ProtocolError):
        ChunkedDecoder().feed(bytearray(wire))


def test_heads_say_how_the_body_ends() -> None:
    assert parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 12", "GET").framing is Framing.LENGTH
    chunk = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3", "GET")
    assert chunk.framing is Framing.CHUNKED and chunk.keep_alive
    close = parse_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0", "GET")
    assert close.framing is Framing.LENGTH and not close.keep_alive
    assert not parse_head(b"HTTP/1.0 200 OK", "GET").keep_alive
    assert parse_head(b"HTTP/1.1 204 No Content", "DELETE").framing is Framing.EMPTY
    for bad in (b"SSH-2.0-OpenSSH", b"HTTP/1.1 2000 OK", b"HTTP/1.1 200 OK\r\nno colon here",
                b"HTTP/1.1 200 OK\r\nContent-Length: -1", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip"):
        with pytest.raises(ProtocolError):
            parse_head(bad, "GET")


def test_a_header_never_ends_a_line_early() -> None:
    with pytest.raises(ValueError):
        request_head("GET", "/api", "h", {"Authorization": "Bearer x\r\nX-Evil: 1"}, None)


# ------------------------------------------------------------------ small servers


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[tuple[KubernetesCluster, list[str]]]]]:
    """Start a plain-HTTP server running ``handler(reader, writer, connection_number)``; returns an
    adapter on it and the request lines the server read."""
    servers: list[asyncio.AbstractServer] = []
    adapters: list[KubernetesCluster] = []
    handlers: set[asyncio.Task[None]] = set()

    async def start(handler: Handler) -> tuple[KubernetesCluster, list[str]]:
        seen: list[str] = []
        count = 0

        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal count
            count += 1
            handlers.add(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await handler(_Recording(reader, seen), writer, count)  # type: ignore[arg-type]
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        adapter = KubernetesCluster(ApiClient(Configuration(host=f"http://127.0.0.1:{port}")),
                                    request_timeout=(2.0, 2.0))
        adapters.append(adapter)
        return adapter, seen

    yield start
    for adapter in adapters:
        await adapter.close()
    for server in servers:
        server.close()
    for task in handlers:
        task.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)


class _Recording:
    """A stream reader that notes each request line it reads."""

    def __init__(self, reader: asyncio.StreamReader, seen: list[str]) -> None:
        self._reader, self._seen = reader, seen

    async def request(self) -> tuple[str, bytes]:
        head = (await self._reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        line = head.split("\r\n", 1)[0]
        self._seen.append(line)
        length = next((int(h.split(":", 1)[1]) for h in head.split("\r\n") if h.lower().startswith("content-length:")),
                      0)
        return line, await self._reader.readexactly(length)


def answer(body: object, *, extra: str = "") -> bytes:
    data = json.dumps(body).encode()
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Content-Length: {len(data)}\r\n\r\n".encode() + data


CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}


async def answer_every_request(reader: _Recording, writer: asyncio.StreamWriter) -> None:
    """Serve the rest of a connection: every request it reads gets ``CM``."""
    while True:
        await reader.request()
        writer.write(answer(CM))


async def test_kept_alive_connections_are_reused(serve) -> None:  # type: ignore[no-untyped-def]
    connections: list[int] = []

    async def handler(reader, writer, number):  # type: ignore[no-untyped-def]
        connections.append(number)
        await answer_every_request(reader, writer)

    adapter, seen = await serve(handler)
    for _ in range(5):
        assert await adapter.get("configmaps", "c", namespace="n") == CM
    assert len(seen) == 5 and connections == [1]
    assert adapter.open_connections == 1


async def test_a_create_is_never_sent_twice(serve) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader, writer, number):  # type: ignore[no-untyped-def]
        if number == 1:
            await reader.request()
            writer.write(answer(CM))  # the first create, answered: the connection is kept
            await reader.request()  # the second, read and dropped without an answer
            return
        await answer_every_request(reader, writer)

    adapter, seen = await serve(handler)
    await adapter.create("configmaps", CM, namespace="n")
    with pytest.raises(i.ServiceUnavailable):
        await adapter.create("configmaps", CM, namespace="n")
    assert seen == ["POST /api/v1/namespaces/n/configmaps HTTP/1.1"] * 2
    assert await adapter.get("configmaps", "c", namespace="n") == CM  # a fresh connection serves the next


async def test_a_dropped_kept_connection_is_replaced_for_a_get(serve) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader, writer, number):  # type: ignore[no-untyped-def]
        if number == 1:
            await reader.request()
            writer.write(answer(CM))
            await reader.request()  # read, then dropped: the get goes again on a new connection
            return
        await answer_every_request(reader, writer)

    adapter, seen = await serve(handler)
    assert await adapter.get("configmaps", "c", namespace="n") == CM
    assert await adapter.get("configmaps", "c", namespace="n") == CM
    assert seen == ["GET /api/v1/namespaces/n/configmaps/c HTTP/1.1"] * 3


async def test_a_cut_answer_is_unavailable_and_its_connection_not_reused(serve) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader, writer, number):  # type: ignore[no-untyped-def]
        await reader.request()
        if number == 1:
            writer.write(answer(CM)[:-5])  # the body ends early
            return
        writer.write(answer(CM))
        await answer_every_request(reader, writer)

    adapter, _ = await serve(handler)
    with pytest.raises(i.ServiceUnavailable):
        await adapter.get("configmaps", "c", namespace="n")
    assert await adapter.get("configmaps", "c", namespace="n") == CM


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_an_answer_larger_than_the_read_buffer_arrives_whole(serve, framing: str) -> None:  # type: ignore[no-untyped-def]
    # A list of thousands of pods is tens of MB: more than the connection buffers before it stops reading.
    items = [{**CM, "metadata": {"name": f"c{n}", "namespace": "n"}, "data": {"x": "y" * 900}} for n in range(12000)]
    big = {"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "7"}, "items": items}

    async def handler(reader, writer, number):  # type: ignore[no-untyped-def]
        while True:
            await reader.request()
            data = json.dumps(big).encode()
            if framing == "length":
                writer.write(answer(big))
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for start in range(0, len(data), 1 << 20):
                    writer.write(chunked(data[start:start + (1 << 20)], [])[: -len(b"0\r\nX-Trailer: yes\r\n\r\n")])
                writer.write(b"0\r\n\r\n")
            await writer.drain()

    adapter, _ = await serve(handler)
    for _ in range(2):  # and the connection is reused after it
        listed = await adapter.list("configmaps", namespace="n")
        assert len(listed["items"]) == 12000 and listed["items"][-1]["metadata"]["name"] == "c11999"
    assert adapter.open_connections == 1


@pytest.mark.parametrize("sent", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"kind\""])
async def test_a_request_given_up_by_its_caller_is_cancelled_not_failed(serve, sent: bytes) -> None:  # type: ignore[no-untyped-def]
    # Callers bound requests with asyncio.wait_for: a cancellation must stay one (and so become
    # their TimeoutError), and the half-answered connection must not serve the next request.
    async def handler(reader, writer, number):  # type: ignore[no-untyped-def]
        await reader.request()
        if number == 1:
            writer.write(sent)  # then silence
            await asyncio.sleep(30)
        writer.write(answer(CM))
        await answer_every_request(reader, writer)

    adapter, _ = await serve(handler)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(adapter.get("configmaps", "c", namespace="n"), 0.3)
    assert adapter.open_connections == 0
    assert await adapter.get("configmaps", "c", namespace="n") == CM


async def test_an_answer_that_is_not_http_is_a_server_error(serve) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader, writer, number):  # type: ignore[no-untyped-def]
        await reader.request()
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    adapter, _ = await serve(handler)
    with pytest.raises(i.ServerError):
        await adapter.get("configmaps", "c", namespace="n")


async def test_a_chunked_watch_split_anywhere_gives_every_event(serve) -> None:  # type: ignore[no-untyped-def]
    events = b"".join(json.dumps({"type": "ADDED", "object": {**CM, "metadata": {"name": f"c{n}"}}}).encode() + b"\n"
                      for n in range(20))

    async def handler(reader, writer, number):  # type: ignore[no-untyped-def]
        await reader.request()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(events), 37):
            writer.write(chunked(events[start:start + 37], [5, 11])[: -len(b"0\r\nX-Trailer: yes\r\n\r\n")])
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await answer_every_request(reader, writer)

    adapter, seen = await serve(handler)
    names = [e.object["metadata"]["name"] async for e in adapter.watch("configmaps", namespace="n")]
    assert names == [f"c{n}" for n in range(20)]
    assert await adapter.get("configmaps", "c", namespace="n") == CM  # on the watch's connection, ended cleanly
    assert len(seen) == 2 and adapter.open_connections == 1


# ------------------------------------------------------------------ through a proxy


async def test_requests_and_watches_go_through_an_http_proxy() -> None:
    tunnels: list[str] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        method, authority, _ = head.split("\r\n", 1)[0].split(" ")
        tunnels.append(f"{method} {authority}")
        host, port = authority.rsplit(":", 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    try:
        async with SimulatedCluster(node_agent=False) as sim:
            direct = KubernetesCluster.from_kubeconfig(str(sim.kubeconfig_path))
            configuration = Configuration(host=sim.url, proxy=f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}",
                                          api_key={"BearerToken": f"Bearer {sim.admin_token}"})
            configuration.ssl_ca_cert = str(sim.ca_path)
            proxied = KubernetesCluster(ApiClient(configuration))
            try:
                await proxied.create("namespaces", {"metadata": {"name": "through"}})
                stream = proxied.watch("configmaps", namespace="through", field_selector="metadata.name=seen", timeout_seconds=30)
                first = asyncio.create_task(stream.__anext__())
                await proxied.create("configmaps", {"metadata": {"name": "seen"}}, namespace="through")
                event = await asyncio.wait_for(first, TIMEOUT)
                assert event.object["metadata"]["name"] == "seen"
                await stream.aclose()
                assert (await direct.get("namespaces", "through"))["metadata"]["name"] == "through"
            finally:
                await proxied.close()
                await direct.close()
        authority = sim.url.removeprefix("https://")
        assert tunnels and set(tunnels) == {f"CONNECT {authority}"}
    finally:
        server.close()
