"""Jupyter Server with ``--gateway-url`` pointing at the gateway: kernels started and used through it.

The gateway runs in this process on the embedded simulated cluster; Jupyter
Server runs as a subprocess with its gateway client aimed at it (the way
JupyterLab users deploy it), and the test talks only to Jupyter Server: its
REST API starts a kernel (which Jupyter Server asks the gateway for) and its
websocket runs code (relayed by Jupyter Server to the gateway's websocket).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from tests.gatewayharness import eventually
from tests.httpharness import USER, WAIT, execute, running_gateway
from tests.test_websocket_resume import rest_of_cell, start_waiting_cell

pytestmark = pytest.mark.slow

TOKEN = "jupyter-server-token"
GATEWAY_TOKEN = "gateway-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def jupyter_server(tmp_path: Path, gateway_url: str) -> AsyncIterator[str]:
    """A Jupyter Server subprocess using the gateway; yields its base URL once it serves.

    Jupyter Server logs its URL before it binds the port (the bind is the
    first callback of its event loop), so readiness is the debug line its
    extensions log when started, from a later callback of the same loop.
    """
    port = free_port()
    env = {**os.environ, "KERNEL_USERNAME": USER, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_PLATFORM_DIRS": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jupyter_server", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", "--ServerApp.log_level=DEBUG", "--ServerApp.open_browser=False", "--ServerApp.allow_root=True",
        f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={tmp_path}",
        f"--gateway-url={gateway_url}", f"--GatewayClient.auth_token={GATEWAY_TOKEN}",
        f"--GatewayClient.request_timeout={WAIT}", f"--GatewayClient.connect_timeout={WAIT}",
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    log: list[str] = []
    drain: asyncio.Task[None] | None = None
    try:
        while True:
            line = (await asyncio.wait_for(process.stderr.readline(), WAIT)).decode(errors="replace")
            assert line, "Jupyter Server exited:\n" + "".join(log)
            log.append(line)
            if "extension was successfully started" in line:
                break  # logged by the loop's first callbacks, after the one binding the port

        async def keep_draining() -> None:
            assert process.stderr is not None
            while line := await process.stderr.readline():
                log.append(line.decode(errors="replace"))

        drain = asyncio.create_task(keep_draining())
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        if drain is not None:
            await asyncio.wait_for(drain, 10)


async def test_jupyter_server_runs_code_through_the_gateway(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, auth_token=GATEWAY_TOKEN) as gw, jupyter_server(tmp_path, gw.url) as server:
        http = AsyncHTTPClient()
        headers = {"Authorization": f"token {TOKEN}"}

        response = await http.fetch(HTTPRequest(f"{server}/api/kernelspecs", headers=headers, request_timeout=WAIT))
        assert "python_kubernetes" in json.loads(response.body)["kernelspecs"]

        response = await http.fetch(HTTPRequest(f"{server}/api/kernels", method="POST", headers=headers,
                                                body=json.dumps({"name": "python_kubernetes"}),
                                                request_timeout=WAIT + 30))
        kernel = json.loads(response.body)
        assert response.code == 201
        status, ours, _ = await gw.call("GET", f"/api/kernels/{kernel['id']}")
        assert status == 200, "Jupyter Server's kernel is the gateway's"
        pods = await gw.cluster.admin.list("pods", label_selector=f"kernel_id={kernel['id']}")
        assert len(pods["items"]) == 1

        ws = await asyncio.wait_for(websocket_connect(HTTPRequest(
            f"{server.replace('http', 'ws')}/api/kernels/{kernel['id']}/channels?token={TOKEN}",
            request_timeout=WAIT)), WAIT)
        try:
            assert (await execute(ws, "1+1")).results == ["2"]
        finally:
            ws.close()

        response = await http.fetch(HTTPRequest(f"{server}/api/kernels/{kernel['id']}", method="DELETE",
                                                headers=headers, request_timeout=WAIT))
        assert response.code == 204
        assert (await gw.call("GET", f"/api/kernels/{kernel['id']}"))[0] == 404
        assert await gw.kernel_objects() == set()


async def test_a_dropped_gateway_websocket_loses_nothing(tmp_path: Path) -> None:
    """Jupyter Server reconnects to the gateway with the client's session_id; what the kernel sent meanwhile comes."""
    async with running_gateway(tmp_path, auth_token=GATEWAY_TOKEN) as gw, jupyter_server(tmp_path, gw.url) as server:
        http = AsyncHTTPClient()
        response = await http.fetch(HTTPRequest(f"{server}/api/kernels", method="POST",
                                                headers={"Authorization": f"token {TOKEN}"},
                                                body=json.dumps({"name": "python_kubernetes"}),
                                                request_timeout=WAIT + 30))
        kernel = json.loads(response.body)
        ws = await asyncio.wait_for(websocket_connect(HTTPRequest(
            f"{server.replace('http', 'ws')}/api/kernels/{kernel['id']}/channels?token={TOKEN}&session_id=lab-1",
            request_timeout=WAIT)), WAIT)
        try:
            go = tmp_path / "go"
            msg_id = await start_waiting_cell(ws, go)
            # the gateway's end of Jupyter Server's websocket fails as a network would have it: no close frame
            (handler,) = gw.gateway.context.websockets
            handler.ws_connection.stream.close()
            await eventually(lambda: len(gw.gateway.context.client_sessions.kept()) == 1)
            go.touch()
            reply, outputs = await rest_of_cell(ws, msg_id)
            assert reply["status"] == "ok" and outputs == ["after the drop\n", "42"]
            assert (await execute(ws, "1+1")).results == ["2"]
        finally:
            ws.close()
