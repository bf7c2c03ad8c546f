"""Gateway replicas that share their kernels, run as an operator runs them, and killed.

Two ``kernelgate serve`` processes run on the simulated API server as ``enterprise-gateway-sa``
with the manifests' RBAC, behind a round-robin front with no affinity, as the manifests' Service
puts them (``tests/replicaharness.py``, ``tests/front.py``).  Clients talk to the front only; the
cluster is observed as its administrator (``tests/replicawatch.py``).  What an operator relies on:

* a replica killed with SIGKILL loses nothing: its kernels are listed and run code through the
  other replica (their variables kept), its clients' next connections reach the other one, a
  replica started in its place serves the same kernels, and deleting them leaves nothing;
* a launch cut short by SIGKILL ends adopted (listed and usable) or removed with everything it
  created, by the moment the gateway promises (``abandoned_launch_taken_over_by``: its launch
  timeout and deadline grace after it began, or the lease duration and a retry period after the
  death, whichever is later) plus the time deleting takes: never both, never neither;
* the lease holder's death hands the duties that must happen once to the other replica within
  the lease duration: a kernel whose pod is deleted meanwhile is restarted once, not twice;
* Jupyter Server pointed at the front keeps running cells when its replica is killed, and a cell
  running as it dies still finishes in the notebook (its reply goes to the client's session, whichever
  replica serves it);
* a kernel's connection key is nowhere but in its record's ``data``: not in a replica's log,
  nor in any label, annotation, event or other object of the cluster.

The first test holds the harness itself to account (``tests/test_front.py`` does the front's):
a replica serves the API and, killed, leaves nothing of it running; one started in its place
serves through the front.  Every wait watches (the cluster, the front's connections, a
process's exit) and is bounded.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.simple_httpclient import HTTPStreamClosedError
from tornado.websocket import websocket_connect

from gateway.aio import cancel_and_wait
from gateway.cluster.interface import Cluster
from gateway.cluster.lease import LeaseSettings
from gateway.kernels.collect import abandoned_launch_taken_over_by
from gateway.kernels.settings import KernelSettings
from scenarios.client import KERNEL_NAME, GatewayClient
from scenarios.observe import Objects, kernel_objects, kernel_pod, wait_until
from tests.httpharness import execute, kernel_info
from tests.replicaharness import (
    GATEWAY_NAMESPACE,
    LEASE_DURATION,
    RENEW_DEADLINE,
    RETRY_PERIOD,
    WAIT,
    ReplicaGroup,
    SimulatedDeployment,
    descendants,
    replica_group,
    simulated_deployment,
    still_running,
)
from tests.replicawatch import (
    RECORD_COMPONENT,
    closed,
    everything,
    first_of,
    kernel_record,
    leaks,
    lease_held,
    nothing_left,
    pods_seen,
    wait_record,
)
from tests.test_jupyter_server import GATEWAY_TOKEN, TOKEN, jupyter_server
from tests.test_websocket_resume import rest_of_cell, start_waiting_cell

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SCHEDULING_SLACK = 3.0
"""What a loaded machine adds to a replica's reaction (a timer firing late, a watch event delivered late)."""
TAKEOVER = LEASE_DURATION + RETRY_PERIOD + SCHEDULING_SLACK
"""Bound on another replica holding the lease once its holder died: the lease runs out, the next try takes it."""
LAUNCH_TIMEOUT = 30.0
"""KERNEL_LAUNCH_TIMEOUT of the launches cut short."""
SETTLE = 15.0
"""Bound on deleting what a launch created once the lease holder took it over (pods stop, namespaces finalize,
a loaded machine's timers fire late)."""
REPLICA_LEASE = LeaseSettings(namespace=GATEWAY_NAMESPACE, identity="any replica", duration=LEASE_DURATION,
                              renew_deadline=RENEW_DEADLINE, retry_period=RETRY_PERIOD)
"""The duties' Lease as the replicas hold it (``tests/replicaharness.py``)."""


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[SimulatedDeployment]:
    async with simulated_deployment(tmp_path) as found:
        yield found


@pytest.fixture
async def group(deployment: SimulatedDeployment, tmp_path: Path) -> AsyncIterator[ReplicaGroup]:
    async with replica_group(deployment.kubeconfig, tmp_path) as found:
        yield found


def client_of(group: ReplicaGroup) -> GatewayClient:
    return GatewayClient(group.url, group.token, wait=WAIT)


# --------------------------------------------------------------------------- the harness itself


async def test_a_replica_serves_the_api_and_sigkill_leaves_nothing_of_it_running(tmp_path: Path) -> None:
    async with simulated_deployment(tmp_path) as deployment, \
            replica_group(deployment.kubeconfig, tmp_path, count=1, env={"EG_RESPONSE_PORT": "0"}) as group:
        replica = group.replicas[0]
        client = client_of(group)
        status, body = await client.call("GET", "/api")
        assert status == 200 and body["version"]
        assert await client.call("GET", "/api/kernels") == (200, [])
        assert (await client.call("GET", "/api/kernels", token=""))[0] in (401, 403)
        assert group.front is not None and group.front.connections[-1].backend == 0

        below = await asyncio.to_thread(descendants, replica.pid)
        await group.kill(0)
        assert replica.process is not None and replica.process.returncode == -signal.SIGKILL
        assert replica.output_read, "the replica's output is read to its end"
        still = await asyncio.to_thread(still_running, below | {replica.pid})
        assert not still, f"processes of the killed replica still running: {still}"
        with pytest.raises(ConnectionRefusedError):
            await asyncio.wait_for(asyncio.open_connection(*replica.address), WAIT)
        with pytest.raises(HTTPStreamClosedError):
            await client.call("GET", "/api")  # the front has no replica left: the connection is closed
        assert group.front.open_to(0) == []

        replacement = await group.restart(0)
        assert replacement.pid != replica.pid
        assert (await client.call("GET", "/api"))[0] == 200
        assert group.front.connections[-1].address == replacement.address
    # Leaving the group stops the replica as Kubernetes stops a pod (SIGTERM): it exits cleanly.
    assert replacement.process is not None and replacement.process.returncode == 0
    assert replacement.output_read


# --------------------------------------------------------------------------- what a client and an administrator see


async def namespace_of(admin: Cluster, kernel_id: str) -> str:
    return (await kernel_pod(admin, kernel_id, timeout=WAIT))["metadata"]["namespace"]


async def listed(client: GatewayClient) -> set[str]:
    status, kernels = await client.call("GET", "/api/kernels")
    assert status == 200, kernels
    return {kernel["id"] for kernel in kernels}


async def runs_code(client: GatewayClient, kernel_id: str, code: str = "1 + 1", result: str = "2") -> None:
    async with client.channels(kernel_id) as channels:
        reply = await channels.execute(code)
        assert (reply.status, reply.results) == ("ok", [result])


# --------------------------------------------------------------------------- a replica dies


async def test_kernels_and_their_clients_outlive_a_killed_replica(
        deployment: SimulatedDeployment, group: ReplicaGroup) -> None:
    admin, front, client = deployment.admin, group.front, client_of(group)
    assert front is not None
    kernels = [(await client.start_kernel("alice"))["id"] for _ in range(2)]
    namespaces = {await namespace_of(admin, kernel_id) for kernel_id in kernels}
    async with client.channels(kernels[0]) as channels:
        assert (await channels.execute("x = 41")).status == "ok"
        victim = group.serving(f"/api/kernels/{kernels[0]}/channels")
        await group.kill(victim)
        await closed(channels.ws)  # the websocket ends with its replica
    survivor = 1 - victim
    after_kill = len(front.connections)

    assert await listed(client) == set(kernels)
    assert (await client.call("GET", f"/api/kernels/{kernels[1]}"))[0] == 200
    async with client.channels(kernels[0]) as channels:
        reply = await channels.execute("x + 1")
        assert (reply.status, reply.results) == ("ok", ["42"]), "the kernel kept its state"
    await runs_code(client, kernels[1])
    assert {c.backend for c in front.connections[after_kill:]} == {survivor}, "every new connection reached it"

    # A replica started in its place is ready, and serves the same kernels, as soon as it serves at all.
    replacement = GatewayClient((await group.restart(victim)).url, group.token, wait=WAIT)
    assert (await replacement.call("GET", "/readyz"))[0] == 200
    assert await listed(replacement) == set(kernels)
    for kernel_id in kernels:
        await client.shutdown_kernel(kernel_id)
    await nothing_left(admin, kernels, namespaces)
    assert await listed(client) == set()


async def _launch_reached(admin: Cluster, moment: str) -> str:
    """The id of the kernel whose launch reached ``moment``: its namespace or pod exists, or its record runs."""
    if moment == "running":
        def running(objects: Objects) -> bool:
            return any(kernel_record(secret).get("phase") == "running" for secret in objects.values())

        found = await wait_until(admin, "secrets", running, namespace=GATEWAY_NAMESPACE,
                                 label_selector=f"component={RECORD_COMPONENT}", timeout=WAIT,
                                 what="a kernel record in phase running")
    else:
        found = await wait_until(admin, f"{moment}s", bool, label_selector="kernel_id", timeout=WAIT,
                                 what=f"a kernel's {moment}")
    return next(iter(found.values()))["metadata"]["labels"]["kernel_id"]


@pytest.mark.parametrize("moment", ["namespace", "pod", "running"])
async def test_a_launch_cut_short_by_sigkill_ends_adopted_or_removed_never_both_never_neither(
        deployment: SimulatedDeployment, group: ReplicaGroup, moment: str) -> None:
    admin, front, client = deployment.admin, group.front, client_of(group)
    assert front is not None
    loop = asyncio.get_running_loop()
    started = loop.time()
    post = asyncio.create_task(client.call("POST", "/api/kernels", {"name": KERNEL_NAME, "env": {
        "KERNEL_USERNAME": "alice", "KERNEL_LAUNCH_TIMEOUT": str(int(LAUNCH_TIMEOUT))}}))
    try:
        kernel_id = await _launch_reached(admin, moment)
        launches = [c for c in front.connections if c.request_line.startswith("POST /api/kernels ")]
        assert len(launches) == 1, launches
        victim = launches[0].backend
        await group.kill(victim)
        died = loop.time()
    finally:
        answer = (await asyncio.wait_for(asyncio.gather(post, return_exceptions=True), WAIT))[0]
    namespaces = {ns["metadata"]["name"] for ns in
                  (await admin.list("namespaces", label_selector=f"kernel_id={kernel_id}"))["items"]}

    taken_over = abandoned_launch_taken_over_by(started, died, launch_timeout=LAUNCH_TIMEOUT,
                                                deadline_grace=KernelSettings().deadline_grace, lease=REPLICA_LEASE)
    outcome = await first_of(
        taken_over + SETTLE - loop.time(),
        adopted=wait_record(admin, kernel_id, lambda r: r.get("phase") == "running", timeout=10 * WAIT,
                            what=f"kernel {kernel_id} adopted"),
        removed=nothing_left(admin, [kernel_id], namespaces, timeout=10 * WAIT))
    if outcome == "removed":
        assert await kernel_objects(admin, kernel_id) == set()
        assert kernel_id not in await listed(client), f"removed, yet listed (the launch answered {answer!r})"
        assert (await client.call("GET", f"/api/kernels/{kernel_id}"))[0] == 404
        return

    # Adopted: listed and usable, and still so once the surviving replica holds the duties and has
    # renewed them since (it derived what to collect from the cluster then, and left the kernel alone).
    adopted = datetime.now(timezone.utc)
    assert kernel_id in await listed(client)
    await runs_code(client, kernel_id)
    survivor = group.replicas[1 - victim].name
    await lease_held(admin, lambda holder, renewed: holder == survivor and renewed > adopted, timeout=TAKEOVER,
                     what=f"the duties held by {survivor} since the adoption")
    assert kernel_id in await listed(client), "adopted, then removed"
    await kernel_pod(admin, kernel_id, timeout=WAIT)
    await runs_code(client, kernel_id)
    await client.shutdown_kernel(kernel_id)
    await nothing_left(admin, [kernel_id], namespaces)


async def test_the_other_replica_takes_over_auto_restart_when_the_lease_holder_dies(
        deployment: SimulatedDeployment, group: ReplicaGroup) -> None:
    admin, client = deployment.admin, client_of(group)
    kernel_id = (await client.start_kernel("alice"))["id"]
    old = await kernel_pod(admin, kernel_id, timeout=WAIT)
    namespace = old["metadata"]["namespace"]
    before = await wait_record(admin, kernel_id, lambda r: r.get("phase") == "running", timeout=WAIT,
                               what=f"kernel {kernel_id} running")
    holder = group.named(await lease_held(admin, lambda holder, _: bool(holder), timeout=TAKEOVER,
                                          what="the duties lease held"))
    successor = 1 - holder

    def by_successor(identity: str, _: datetime) -> bool:
        return group.index_of(identity) == successor

    async with pods_seen(admin, kernel_id) as uids:
        await group.kill(holder)
        # The pod dies while no live replica holds the lease: its successor finds it dead in the cluster.
        await admin.delete("pods", old["metadata"]["name"], namespace=namespace)
        await lease_held(admin, by_successor, timeout=TAKEOVER,
                         what=f"the duties lease taken over by {group.replicas[successor].name}")
        new = await kernel_pod(admin, kernel_id, timeout=WAIT, other_than=old["metadata"]["uid"])
        after = await wait_record(
            admin, kernel_id, lambda r: r.get("phase") == "running" and r["pod"]["uid"] == new["metadata"]["uid"],
            timeout=WAIT, what=f"kernel {kernel_id} running in its new pod")
        # Exactly once: after the successor renewed the lease again, still the one new pod, counted once.
        settled = datetime.now(timezone.utc)
        await lease_held(admin, lambda holder, renewed: by_successor(holder, renewed) and renewed > settled,
                         timeout=TAKEOVER, what="a renewal after the restart")
        pods = await admin.list("pods", label_selector=f"kernel_id={kernel_id}")
    assert uids == {old["metadata"]["uid"], new["metadata"]["uid"]}, "one new pod, not two"
    assert [p["metadata"]["uid"] for p in pods["items"]] == [new["metadata"]["uid"]]
    assert after["restart_count"] == before["restart_count"] + 1

    await runs_code(client, kernel_id)
    await client.shutdown_kernel(kernel_id)
    await nothing_left(admin, [kernel_id], [namespace])


# --------------------------------------------------------------------------- Jupyter Server in front


async def test_jupyter_server_keeps_running_cells_when_its_replica_is_killed(
        deployment: SimulatedDeployment, tmp_path: Path) -> None:
    admin = deployment.admin
    async with replica_group(deployment.kubeconfig, tmp_path, env={"EG_AUTH_TOKEN": GATEWAY_TOKEN}) as group, \
            jupyter_server(tmp_path, group.url) as server:
        assert group.front is not None
        http = AsyncHTTPClient()
        headers = {"Authorization": f"token {TOKEN}"}
        response = await http.fetch(HTTPRequest(f"{server}/api/kernels", method="POST", headers=headers,
                                                body=json.dumps({"name": KERNEL_NAME}), request_timeout=WAIT + 30))
        kernel_id = json.loads(response.body)["id"]
        namespace = await namespace_of(admin, kernel_id)
        ws = await asyncio.wait_for(websocket_connect(HTTPRequest(
            f"{server.replace('http', 'ws')}/api/kernels/{kernel_id}/channels?token={TOKEN}&session_id=lab-1",
            request_timeout=WAIT)), WAIT)
        try:
            assert (await execute(ws, "x = 41")).reply["status"] == "ok"
            go = tmp_path / "go"
            msg_id = await start_waiting_cell(ws, go)  # a cell runs as its replica dies
            channels = f"/api/kernels/{kernel_id}/channels"
            victim = group.serving(channels)
            before = group.front.connections[-1].number
            await group.kill(victim)
            # Jupyter Server connects its websocket to the gateway again; the front sends it to the other replica.
            again = await group.front.wait_for(lambda c: c.number > before and channels in c.request_line,
                                               timeout=WAIT, what="Jupyter Server's websocket again")
            assert again.backend == 1 - victim
            # Jupyter Server holds what the notebook sends until that websocket opens; answered on control while
            # the cell runs, this says the other replica's sockets reached the kernel under the session's identity
            await kernel_info(ws, channel="control")
            go.touch()
            reply, outputs = await rest_of_cell(ws, msg_id)  # the reply goes to the session, wherever it is
            assert reply["status"] == "ok" and outputs == ["after the drop\n", "42"]
            assert (await execute(ws, "x + 1")).results == ["42"]
        finally:
            ws.close()
        response = await http.fetch(HTTPRequest(f"{server}/api/kernels/{kernel_id}", method="DELETE",
                                                headers=headers, request_timeout=WAIT))
        assert response.code == 204
        await nothing_left(admin, [kernel_id], [namespace])


# --------------------------------------------------------------------------- the connection key


async def test_a_connection_key_is_nowhere_but_in_its_record(deployment: SimulatedDeployment, tmp_path: Path) -> None:
    admin = deployment.admin
    keys: set[str] = set()

    def collect(objects: Objects) -> bool:
        keys.update(kernel_record(secret)["connection"]["key"] for secret in objects.values()
                    if (kernel_record(secret).get("connection") or {}).get("key"))
        return False

    records = asyncio.create_task(wait_until(admin, "secrets", collect, namespace=GATEWAY_NAMESPACE,
                                             label_selector=f"component={RECORD_COMPONENT}", timeout=10 * WAIT))
    try:
        # Every replica logs all it can; the kernel goes through start, use, restart, auto-restart, shutdown.
        async with replica_group(deployment.kubeconfig, tmp_path, env={"EG_LOG_LEVEL": "DEBUG"}) as group:
            client = client_of(group)
            kernel_id = (await client.start_kernel("alice"))["id"]
            old = await kernel_pod(admin, kernel_id, timeout=WAIT)
            await runs_code(client, kernel_id)
            assert (await client.call("POST", f"/api/kernels/{kernel_id}/interrupt"))[0] == 204
            assert (await client.call("POST", f"/api/kernels/{kernel_id}/restart"))[0] == 200
            restarted = await kernel_pod(admin, kernel_id, timeout=WAIT, other_than=old["metadata"]["uid"])
            await admin.delete("pods", restarted["metadata"]["name"], namespace=restarted["metadata"]["namespace"])
            await kernel_pod(admin, kernel_id, timeout=WAIT, other_than=restarted["metadata"]["uid"])
            await wait_record(admin, kernel_id, lambda r: r.get("phase") == "running", timeout=WAIT,
                              what=f"kernel {kernel_id} running again")
            await runs_code(client, kernel_id)
            while_running = await everything(admin)
            await client.shutdown_kernel(kernel_id)
            await nothing_left(admin, [kernel_id], [old["metadata"]["namespace"]])
        output = group.output()
    finally:
        await cancel_and_wait(records)
    assert len(keys) >= 2, f"a key per launch, read from the records: {len(keys)}"
    assert not leaks(keys, [("the replicas' output", output)]), "a connection key in a replica's log"
    assert not leaks(keys, while_running), "a connection key outside its record's data"
    assert not leaks(keys, await everything(admin)), "a connection key left in the cluster"
