"""Culling: a gateway with ``EG_CULL_IDLE_TIMEOUT`` shuts down kernels nobody uses, and only those.

A kernel left idle with no client connected disappears, pod and namespace;
a kernel idle just as long but with a client connected stays
(``EG_CULL_CONNECTED`` is off) and still runs code.
"""

from __future__ import annotations

import pytest

from .client import GatewayClient
from .observe import gone
from .targets import Endpoint

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow]


async def test_an_idle_kernel_is_culled_and_a_connected_one_is_kept(
        culling_gateway: Endpoint, culling_client: GatewayClient) -> None:
    gateway, client = culling_gateway, culling_client
    kept = (await client.start_kernel("alice"))["id"]
    try:
        async with client.channels(kept) as channels:
            assert (await channels.execute("x = 1")).status == "ok"
            # Started after the connected kernel last did anything: idle for less time than it.
            idle = (await client.start_kernel("bob"))["id"]
            await gone(gateway.observer, idle, timeout=gateway.wait)
            status, body = await client.call("GET", f"/api/kernels/{idle}")
            assert status == 404 and body["reason"]

            status, model = await client.call("GET", f"/api/kernels/{kept}")
            assert status == 200 and model["connections"] == 1 and model["execution_state"] == "idle"
            reply = await channels.execute("x + 1")
            assert (reply.status, reply.results) == ("ok", ["2"])
    finally:
        await client.shutdown_kernel(kept)
    await gone(gateway.observer, kept, timeout=gateway.wait)
