"""Watch streams of the simulated API server over plain HTTPS.

Events in order until the stream's timeout, label filters, Table events for
``kubectl get --watch``, the 410 of a version the store no longer keeps, and
no watch left open on the server when it stops, when its client goes away or
when the caller may not watch.  The server and client are
tests/apiserverharness.py's.
"""

from __future__ import annotations

import asyncio
import ssl

from tests.apiserverharness import (
    TABLE,
    api_fixture,  # noqa: F401 (a fixture, which pytest finds by name)
    cluster_fixture,  # noqa: F401 (a fixture, which pytest finds by name)
    configmap,
    service_account_token,
)


async def test_watch_streams_events_in_order_until_its_timeout(api):
    listed = await api.ok("GET", "/api/v1/namespaces/default/configmaps")
    rv = listed["metadata"]["resourceVersion"]
    watch = api.watch(f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1")
    await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap("w", k="1"))
    await api.ok("PATCH", "/api/v1/namespaces/default/configmaps/w", {"data": {"k": "2"}},
                 {"Content-Type": "application/merge-patch+json"})
    await api.ok("DELETE", "/api/v1/namespaces/default/configmaps/w")
    events = [await watch.next() for _ in range(3)]
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert [e["object"]["data"]["k"] for e in events] == ["1", "2", "2"]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(rv)
    response = await watch.finished()  # timeoutSeconds ends the stream
    assert response.code == 200 and watch.events.empty()
    assert watch.headers["content-type"] == "application/json"


async def test_watch_without_version_starts_with_what_exists_and_filters_by_label(api):
    await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap("keep", {"app": "x"}))
    await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap("skip", {"app": "y"}))
    watch = api.watch("/api/v1/configmaps?watch=true&labelSelector=app%3Dx&timeoutSeconds=1")
    first = await watch.next()
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "keep")
    await watch.finished()
    assert watch.events.empty()


async def test_watch_as_table_for_kubectl_get_watch(api):
    rv = (await api.ok("GET", "/api/v1/namespaces/default/configmaps"))["metadata"]["resourceVersion"]
    watch = api.watch(f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1",
                      headers={"Accept": TABLE})
    await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap("tw", k="v"))
    event = await watch.next()
    assert event["type"] == "ADDED" and event["object"]["kind"] == "Table"
    assert event["object"]["rows"][0]["cells"][:2] == ["tw", 1]
    await watch.finished()


async def test_watch_from_a_version_too_old_gets_an_error_event_with_410(api, cluster):
    old = (await api.ok("GET", "/api/v1/namespaces/default/configmaps"))["metadata"]["resourceVersion"]
    for i in range(8):  # more writes than the store's watch window of 5
        await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap(f"g{i}"))
    watch = api.watch(f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old}")
    event = await watch.next()
    assert event["type"] == "ERROR"
    assert event["object"]["kind"] == "Status" and event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired" and "too old resource version" in event["object"]["message"]
    assert (await watch.finished()).code == 200


async def test_stopping_the_server_ends_open_watches(cluster, api):
    watch = api.watch("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=" + cluster.store.resource_version)
    await api.ok("POST", "/api/v1/namespaces/default/configmaps", configmap("nudge"))
    assert (await watch.next())["type"] == "ADDED"  # the event arrived: the watch is open on the server
    assert cluster.store.open_watches("configmaps") == 1
    await cluster.server.stop()
    await watch.finished()
    assert cluster.store.open_watches() == 0


async def test_a_client_that_goes_away_leaves_no_watch_behind(cluster):
    host, port = cluster.url.removeprefix("https://").rsplit(":", 1)
    ctx = ssl.create_default_context(cadata=cluster.ca_pem.decode())
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port), ssl=ctx), 5)
    writer.write(
        f"GET /api/v1/namespaces/default/pods?watch=1 HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {cluster.admin_token}\r\n\r\n".encode()
    )
    status_line = await asyncio.wait_for(reader.readline(), 5)
    assert status_line.startswith(b"HTTP/1.1 200")
    assert cluster.store.open_watches("pods") == 1
    writer.close()
    await asyncio.wait_for(cluster.server.watches.idle(), 5)
    assert cluster.store.open_watches() == 0


async def test_a_watch_the_caller_may_not_make_is_refused_with_403(api, cluster):
    token = await service_account_token(api, "default", "nobody")
    code, status = await api.as_token(token).call("GET", "/api/v1/namespaces/default/pods?watch=1")
    assert (code, status["reason"]) == (403, "Forbidden")
    assert cluster.store.open_watches() == 0
