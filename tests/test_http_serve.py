"""``jupyter kernelgate`` / ``kernelgate serve`` as a process: it serves, runs kernels, and SIGTERM leaves nothing.

The gateway runs as a subprocess on its embedded simulated cluster, as on a
laptop.  After SIGTERM it must exit 0 within its bounded shutdown, and every
process it started (node agent containers: launchers and kernels) must be
gone: no orphan keeps running after the gateway.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from tests.httpharness import USER, WAIT, execute, websocket_connect

pytestmark = pytest.mark.slow

SERVING = re.compile(r"kernelgate serving at (http://127\.0\.0\.1:\d+)")


def descendants(root: int) -> set[int]:
    """Pids of every live process below ``root`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


async def test_jupyter_kernelgate_serves_and_sigterm_leaves_no_process(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "EG_KERNEL_LAUNCH_TIMEOUT": "60",
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    env.pop("EG_RESPONSE_PORT", None)
    process = await asyncio.create_subprocess_exec(
        str(bin_dir / "jupyter"), "kernelgate", "--ip", "127.0.0.1", "--port", "0", "--log-level", "WARNING",
        env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True)
    assert process.stdout is not None
    try:
        while True:
            line = (await asyncio.wait_for(process.stdout.readline(), WAIT)).decode()
            assert line, "the gateway exited before serving"
            if match := SERVING.search(line):
                url = match.group(1)
                break
        http = AsyncHTTPClient()
        response = await http.fetch(HTTPRequest(url + "/api/kernels", method="POST",
                                                body=json.dumps({"env": {"KERNEL_USERNAME": USER}}),
                                                request_timeout=WAIT + 30))
        kernel_id = json.loads(response.body)["id"]
        ws = await asyncio.wait_for(websocket_connect(url.replace("http", "ws") + f"/api/kernels/{kernel_id}/channels"),
                                    WAIT)
        done = await execute(ws, "import os; os.getpid()")
        kernel_pid = int(done.results[0])
        started = descendants(process.pid)
        assert kernel_pid in started, "the kernel runs under the gateway's node agent"

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), WAIT) == 0
        while await asyncio.wait_for(ws.read_message(), WAIT) is not None:
            pass  # the gateway closed the websocket (after a last "dead" status, if the kernel went first)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    orphans = [pid for pid in started if alive(pid)]
    for pid in orphans:
        os.kill(pid, signal.SIGKILL)
    assert orphans == []


async def test_gateways_outside_a_pod_do_not_fight_over_the_response_port(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``kernelgate serve --kubeconfig`` twice on one machine: without ``EG_RESPONSE_PORT`` each listens on a free port."""
    from gateway.app import EmbeddedCluster, Gateway
    from gateway.config import GatewayConfig

    monkeypatch.delenv("EG_RESPONSE_PORT", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    gateways = []
    try:
        for n in range(2):
            config = GatewayConfig(ip="127.0.0.1", port=0, response_ip="127.0.0.1")
            connection = EmbeddedCluster(config.namespace, work_dir=tmp_path / f"node-{n}")
            connection.local = False  # as a cluster named by a kubeconfig: launchers call back over the network
            gateway = Gateway(config, cluster=connection)
            gateways.append(gateway)
            await gateway.start()
        ports = [g.listener.port for g in gateways]
        assert len(set(ports)) == 2 and 8877 not in ports
        for g in gateways:
            assert g.response_address == f"127.0.0.1:{g.listener.port}"
    finally:
        for g in gateways:
            await g.stop()
