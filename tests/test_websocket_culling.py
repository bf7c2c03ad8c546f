"""Culling as websocket clients come and go: a connected client keeps an idle kernel, a closed one no longer does.

With culling on and ``cull_connected`` off (Jupyter Server's default), an idle kernel with an open
notebook is kept; once the notebook's websocket closes, the kernel is idle like any other and culled.
The gateway runs on the embedded simulated cluster (tests/httpharness.py) with a real kernel; the
culling timer is set far off and culling is run by hand, so the test decides when it happens.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.kernels.kernel import utcnow
from tests.httpharness import WAIT, kernel_info, running_gateway

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("v1", [False, True], ids=["legacy", "v1"])
async def test_an_idle_kernel_is_culled_once_its_client_closed_the_websocket(tmp_path: Path, v1: bool) -> None:
    async with running_gateway(tmp_path, cull_idle_timeout=1.0, cull_interval=3600.0) as gw:
        model = await gw.start_kernel()
        kernel_id = model["id"]
        service = gw.gateway.service
        assert service is not None and gw.gateway.context is not None
        kernel = service.get(kernel_id)

        ws = await gw.websocket(kernel_id, v1=v1)
        assert (await kernel_info(ws))["status"] == "ok"
        assert (await gw.call("GET", f"/api/kernels/{kernel_id}"))[1]["connections"] == 1
        kernel.last_activity = utcnow() - timedelta(hours=1)
        assert await service.cull_idle_kernels() == [], "an idle kernel with a connected client was culled"

        (handler,) = gw.gateway.context.websockets
        closed = asyncio.Event()
        on_close = handler.on_close

        def noted_close() -> None:
            on_close()
            closed.set()

        handler.on_close = noted_close  # type: ignore[method-assign]
        ws.close()
        await asyncio.wait_for(closed.wait(), WAIT)  # the gateway has handled the close

        status, model, _ = await gw.call("GET", f"/api/kernels/{kernel_id}")
        assert status == 200 and model["connections"] == 0
        kernel.last_activity = utcnow() - timedelta(hours=1)
        assert await service.cull_idle_kernels() == [kernel_id]
        assert (await gw.call("GET", f"/api/kernels/{kernel_id}"))[0] == 404
        assert (await gw.call("GET", "/api/kernels"))[1] == []
        assert await gw.kernel_objects() == set()
