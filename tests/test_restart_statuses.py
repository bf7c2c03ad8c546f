"""What a websocket client hears while its kernel restarts: Jupyter Server's statuses, on every replica.

Jupyter Server sends a client ``restarting`` only from its auto-restarter's callback, when the
kernel died and is being restarted (JupyterLab then tells its user the kernel "appears to have
died"); a restart the client asked for (``POST /api/kernels/{id}/restart``) is not announced so.
The new kernel's ``starting`` and its state once it answers are heard either way.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.http.bridge import KernelBridge
from gateway.http.bridgestate import BridgeState
from gateway.http.wsprotocol import LegacyCodec
from gateway.kernels.kernel import IDLE
from tests.gatewayharness import WAIT, Stack, client_env, shared_cluster
from tests.httpharness import execute, read, running_gateway

pytestmark = pytest.mark.slow


def statuses(messages: list[dict[str, Any]]) -> list[str]:
    """The statuses the gateway itself sent (no parent: not a kernel's busy/idle relayed from its iopub)."""
    return [m["content"]["execution_state"] for m in messages if m["msg_type"] == "status" and not m["parent_header"]]


async def delete_pod_of(admin: Any, kernel_id: str) -> str:
    """Delete the kernel's pod behind the gateway's back (as an administrator or an eviction would); its uid."""
    pods = (await admin.list("pods", label_selector=f"kernel_id={kernel_id}"))["items"]
    assert len(pods) == 1
    meta = pods[0]["metadata"]
    await admin.delete("pods", meta["name"], namespace=meta["namespace"])
    return meta["uid"]


async def test_a_requested_restart_is_not_announced_as_a_death_but_an_auto_restart_is(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        kernel = await gw.start_kernel()
        ws = await gw.websocket(kernel["id"])
        assert (await execute(ws, "x = 1")).reply["status"] == "ok"

        status, model, _ = await gw.call("POST", f"/api/kernels/{kernel['id']}/restart")
        assert status == 200 and model["id"] == kernel["id"]
        done = await execute(ws, "1+1")  # reads what the gateway sent during the restart too
        assert done.results == ["2"]
        heard = statuses(done.seen)
        assert "restarting" not in heard
        assert heard[0] == "starting"

        await delete_pod_of(gw.cluster.admin, kernel["id"])
        heard = []
        while not ("starting" in heard and "idle" in heard[heard.index("starting"):]):
            heard += statuses([await read(ws)])
        assert heard[:2] == ["restarting", "starting"]
        assert (await execute(ws, "x")).reply["ename"] == "NameError"  # a new kernel answers
        ws.close()


class Listener:
    """A websocket client of one replica, as its bridge sees it: the statuses the gateway itself sends it (no
    parent: not a kernel's busy/idle relayed from its iopub), awaitable."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        self._changed = asyncio.Event()

    def write(self, payload: str | bytes, binary: bool) -> None:
        message = json.loads(payload)
        if message["msg_type"] == "status" and not message["parent_header"]:
            self.heard.append(message["content"]["execution_state"])
            self._changed.set()

    def close(self) -> None:
        pass

    async def hear(self, count: int) -> list[str]:
        """The statuses once at least ``count`` were written (bounded by :data:`WAIT`)."""
        async def enough() -> None:
            while len(self.heard) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(enough(), WAIT)
        return list(self.heard)


async def bridge_on(stack: Stack, kernel_id: str) -> tuple[KernelBridge, Listener]:
    """A websocket client's bridge to the kernel on ``stack`` (another replica than the one that restarts it)."""
    kernel = stack.service.get(kernel_id)
    await kernel.wait_until(lambda k: k.state == IDLE and k.connection is not None, WAIT)
    listener = Listener()
    bridge = KernelBridge(stack.service, kernel, LegacyCodec(), listener.write, listener.close, nudge_timeout=5.0)
    await bridge.open()
    assert bridge.state is BridgeState.RELAYING
    return bridge, listener


async def served_by(stack: Stack, kernel_id: str) -> None:
    """Once ``stack`` serves the kernel (it adopts it from the record another replica wrote)."""
    async def adopted() -> None:
        while True:  # the record follower adopts it as the records informer delivers the record
            if kernel_id in stack.service:
                return
            await asyncio.sleep(0.02)

    await asyncio.wait_for(adopted(), WAIT)


async def test_a_client_of_another_replica_hears_a_requested_restart_as_such(tmp_path: Path) -> None:
    async with shared_cluster(tmp_path) as cluster:
        a, b = await cluster.gateway("gateway-a"), await cluster.gateway("gateway-b")
        kernel = await a.service.start_kernel(name=None, env=client_env("own"), username_fallback="gateway")
        await served_by(b, kernel.id)
        bridge, listener = await bridge_on(b, kernel.id)
        try:
            await a.service.restart(kernel.id)  # through A; the client is B's
            assert await listener.hear(2) == ["starting", "idle"]

            await delete_pod_of(cluster.admin, kernel.id)  # whichever replica leads restarts it
            assert await listener.hear(5) == ["starting", "idle", "restarting", "starting", "idle"]
        finally:
            bridge.close()
