"""The kernel launcher as a real process: handshake, code execution, interrupt, shutdown, exit codes.

Each test starts ``python -m gateway.launcher`` with its own loopback address
(standing in for a pod IP), receives its payload on a real response listener,
talks to the real IPython kernel with jupyter_client, and checks that no
process mentioning the kernel id is left when the launcher has exited.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest
from ipykernel.ipkernel import IPythonKernel
from jupyter_client.asynchronous import AsyncKernelClient

from gateway.launcher.main import main as launcher_main
from gateway.launcher.protocol import COMM_ACK, sign_comm_request
from gateway.provisioner import comm
from gateway.provisioner.connection import ConnectionInfo
from gateway.provisioner.crypto import GatewayKeys
from gateway.provisioner.response import ResponseListener
from tests.node import processes_mentioning

pytestmark = pytest.mark.slow

WAIT = 30.0  # generous bound for kernel start-up on a loaded machine
REPO_ROOT = Path(__file__).resolve().parent.parent


class MarkedKernel(IPythonKernel):
    """A kernel class a launcher can be told to run (``--kernel-class-name``)."""

    implementation = "kernelgate-test-kernel"


@pytest.fixture(scope="module")
def keys() -> GatewayKeys:
    return GatewayKeys(legacy=True)


@pytest.fixture
async def listener(keys):
    async with ResponseListener(host="127.0.0.1", port=0, keys=keys) as lst:
        yield lst


class Launch:
    """One launcher process and what the gateway learnt from it."""

    def __init__(self, kernel_id: str, process: asyncio.subprocess.Process) -> None:
        self.kernel_id = kernel_id
        self.process = process
        self.conn: ConnectionInfo | None = None
        self.client: AsyncKernelClient | None = None

    async def connect(self) -> AsyncKernelClient:
        assert self.conn is not None
        client = AsyncKernelClient()
        client.load_connection_info(self.conn.to_jupyter())
        # No heartbeat channel: under load a slow first heartbeat would read as a dead kernel.
        client.start_channels(hb=False)
        self.client = client
        await client.wait_for_ready(timeout=WAIT)
        return client

    async def exit_status(self) -> int:
        return await asyncio.wait_for(self.process.wait(), WAIT)

    async def close(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), WAIT)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()


@pytest.fixture
async def launches(tmp_path):
    started: list[Launch] = []

    async def launch(
        *args: str, env: dict[str, str] | None = None, kernel_id: str | None = None, capture_stderr: bool = False
    ) -> Launch:
        kernel_id = kernel_id or str(uuid.uuid4())
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("KERNEL_", "EG_", "JPY_"))}
        child_env["PYTHONPATH"] = str(REPO_ROOT)  # lets a kernel load the test kernel class below
        child_env["TMPDIR"] = str(tmp_path)  # a killed launcher's connection file (and its key) goes with the test
        child_env.update(env or {})
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.launcher",
            *args,
            env=child_env,
            stdin=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE if capture_stderr else None,
        )
        started.append(Launch(kernel_id, process))
        return started[-1]

    yield launch
    for item in started:
        await item.close()
    for item in started:
        assert not processes_mentioning(item.kernel_id), "a kernel process outlived its launcher"


async def start_kernel(listener: ResponseListener, launches, pod_ip: str, *extra: str) -> Launch:
    kernel_id = str(uuid.uuid4())
    pending = listener.expect(kernel_id, source_ip=pod_ip, timeout=WAIT)
    launch = await launches(
        "--kernel-id",
        kernel_id,
        "--response-address",
        f"127.0.0.1:{listener.port}",
        "--public-key",
        listener.public_key,
        "--ip",
        pod_ip,
        *extra,
        kernel_id=kernel_id,
    )
    launch.conn = await pending
    return launch


async def run_code(client: AsyncKernelClient, code: str) -> tuple[dict, list[str]]:
    """Execute ``code``; returns the shell reply content and the text/plain results."""
    results: list[str] = []

    def on_output(msg: dict) -> None:
        if msg["msg_type"] == "execute_result":
            results.append(msg["content"]["data"]["text/plain"])

    reply = await client.execute_interactive(code, timeout=WAIT, output_hook=on_output)
    return reply["content"], results


async def start_sleeping(client: AsyncKernelClient) -> str:
    """Start a minute-long sleep and return once the kernel is in it (it prints first)."""
    # stop_on_error=False: otherwise ipykernel aborts requests arriving right after an interrupted one
    msg_id = client.execute("print('sleeping', flush=True); import time; time.sleep(60)", stop_on_error=False)
    while True:
        msg = await client.get_iopub_msg(timeout=WAIT)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            return msg_id


async def raw_comm_request(conn: ConnectionInfo, request: object) -> bytes:
    """Send any JSON to the comm port as EG does; returns what the launcher answered before closing."""
    reader, writer = await asyncio.open_connection(conn.ip, conn.comm_port)
    try:
        writer.write(json.dumps(request).encode())
        writer.write_eof()
        await writer.drain()
        return await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()


# --------------------------------------------------------------------------- tests


async def test_launch_execute_interrupt_and_shutdown(listener, launches, tmp_path):
    launch = await start_kernel(listener, launches, "127.0.0.61")
    assert launch.conn.ip == "127.0.0.61" and launch.conn.comm_port
    client = await launch.connect()

    content, results = await run_code(client, "1+1")
    assert content["status"] == "ok" and results == ["2"]

    # stop_on_error=False: otherwise ipykernel aborts requests arriving right after the interrupted one
    msg_id = await start_sleeping(client)
    assert await comm.send_signal(launch.conn, signal.SIGINT) is True
    # The cell sleeps far longer than WAIT: a KeyboardInterrupt reply within WAIT is the interrupt's doing.
    reply = await client.get_shell_msg(timeout=WAIT)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"

    content, results = await run_code(client, "2+2")
    assert content["status"] == "ok" and results == ["4"]

    # Shutdown while busy still lets the kernel exit cleanly, running its exit handlers.
    marker = tmp_path / "exit-handlers-ran"
    await run_code(client, f"import atexit; atexit.register(lambda: open({str(marker)!r}, 'w').close())")
    await start_sleeping(client)
    assert await comm.request_shutdown(launch.conn) is True
    assert await launch.exit_status() == 0
    assert marker.exists()
    assert not processes_mentioning(launch.kernel_id)


async def test_unsigned_or_badly_signed_comm_requests_are_ignored(listener, launches):
    launch = await start_kernel(listener, launches, "127.0.0.62")
    client = await launch.connect()
    conn = launch.conn
    now = time.time()

    assert await raw_comm_request(conn, {"shutdown": 1}) == b""  # EG's unsigned form
    assert await raw_comm_request(conn, {"signum": 9}) == b""
    wrong_key = sign_comm_request(kernel_id=conn.kernel_id, key="not-the-key", now=now, shutdown=True)
    assert await raw_comm_request(conn, wrong_key) == b""
    other_kernel = sign_comm_request(kernel_id=str(uuid.uuid4()), key=conn.key, now=now, shutdown=True)
    assert await raw_comm_request(conn, other_kernel) == b""
    stale = sign_comm_request(kernel_id=conn.kernel_id, key=conn.key, now=now - 3600, shutdown=True)
    assert await raw_comm_request(conn, stale) == b""
    altered = sign_comm_request(kernel_id=conn.kernel_id, key=conn.key, now=now, signum=0)
    altered["signum"] = 9
    assert await raw_comm_request(conn, altered) == b""
    assert await raw_comm_request(conn, "not an object") == b""

    probe = sign_comm_request(kernel_id=conn.kernel_id, key=conn.key, now=now, signum=0)
    assert await raw_comm_request(conn, probe) == COMM_ACK
    assert await raw_comm_request(conn, probe) == b""  # the same request again is a replay

    content, results = await run_code(client, "1+1")
    assert results == ["2"] and launch.process.returncode is None

    launch.process.send_signal(signal.SIGTERM)  # as the kubelet stops a pod
    assert await launch.exit_status() == 0
    assert not processes_mentioning(launch.kernel_id)


async def test_kernel_exit_status_becomes_the_launchers(listener, launches):
    launch = await start_kernel(listener, launches, "127.0.0.63")
    client = await launch.connect()
    client.execute("import os; os._exit(3)")
    assert await launch.exit_status() == 3
    assert not processes_mentioning(launch.kernel_id)


async def test_a_kernel_pod_is_one_process(listener, launches):
    launch = await start_kernel(listener, launches, "127.0.0.67")
    client = await launch.connect()
    content, results = await run_code(client, "import os; os.getpid()")
    assert results == [str(launch.process.pid)], "the kernel runs in the launcher's own process"
    assert processes_mentioning(launch.kernel_id) == [launch.process.pid]
    launch.process.kill()  # as a container is killed: nothing is left to outlive it
    assert await launch.exit_status() == -signal.SIGKILL


async def test_the_connection_info_arrives_once_the_kernel_listens(listener, launches):
    """The gateway connects to the kernel as soon as it has the ports: each connection is taken at
    once, not refused again and again while ipykernel imports (the payload goes out once the
    kernel's sockets listen)."""
    launch = await start_kernel(listener, launches, "127.0.0.68")
    conn = launch.conn
    for port in (conn.shell_port, conn.control_port, conn.stdin_port, conn.iopub_port):
        _, writer = await asyncio.wait_for(asyncio.open_connection(conn.ip, port), WAIT)
        writer.close()
    client = await launch.connect()
    content, _ = await run_code(client, "1")
    assert content["status"] == "ok"


async def test_sigterm_stops_a_busy_kernel_cleanly_while_the_comm_port_still_answers(listener, launches, tmp_path):
    launch = await start_kernel(listener, launches, "127.0.0.68")
    client = await launch.connect()
    marker = tmp_path / "exit-handlers-ran"
    await run_code(client, f"import atexit; atexit.register(lambda: open({str(marker)!r}, 'w').close())")
    await start_sleeping(client)
    probe = sign_comm_request(kernel_id=launch.conn.kernel_id, key=launch.conn.key, now=time.time(), signum=0)
    assert await raw_comm_request(launch.conn, probe) == COMM_ACK  # served beside the busy kernel
    launch.process.send_signal(signal.SIGTERM)  # as the kubelet stops a pod
    assert await launch.exit_status() == 0
    assert marker.exists()


async def test_client_shutdown_ends_the_launcher_and_a_restart_is_a_new_launch(listener, launches):
    first = await start_kernel(listener, launches, "127.0.0.69")
    client = await first.connect()
    await run_code(client, "x = 1")
    client.shutdown()  # shutdown_request on the control channel, as jupyter_client sends it
    assert await first.exit_status() == 0

    # The gateway restarts a kernel as a new pod under the same kernel id: a fresh kernel.
    pending = listener.expect(first.kernel_id, source_ip="127.0.0.69", timeout=WAIT)
    second = await launches("--kernel-id", first.kernel_id, "--response-address", f"127.0.0.1:{listener.port}",
                            "--public-key", listener.public_key, "--ip", "127.0.0.69", kernel_id=first.kernel_id)
    second.conn = await pending
    client = await second.connect()
    content, results = await run_code(client, "'x' in dir()")
    assert results == ["False"]
    assert await comm.request_shutdown(second.conn) is True
    assert await second.exit_status() == 0


async def test_eg_environment_and_rsa_key_send_a_legacy_payload(listener, launches, caplog):
    caplog.set_level(logging.INFO, logger="gateway.provisioner.response")
    kernel_id = str(uuid.uuid4())
    pending = listener.expect(kernel_id, source_ip="127.0.0.64", timeout=WAIT)
    launch = await launches(
        "--kernel-class-name",
        f"{__name__}.MarkedKernel",
        env={
            "KERNEL_ID": kernel_id,
            "RESPONSE_ADDRESS": f"127.0.0.1:{listener.port}",
            "PUBLIC_KEY": listener.legacy_public_key,
            "KERNEL_POD_IP": "127.0.0.64",
            "PORT_RANGE": "41000..41999",
            "KERNEL_LANGUAGE": "python",
        },
        kernel_id=kernel_id,
    )
    launch.conn = await pending
    assert f"(v1) accepted for kernel {kernel_id}" in caplog.text
    conn = launch.conn
    ports = [conn.shell_port, conn.iopub_port, conn.stdin_port, conn.control_port, conn.hb_port, conn.comm_port]
    assert len(set(ports)) == 6 and all(41000 <= port <= 41999 for port in ports)
    client = await launch.connect()
    client.kernel_info()
    info = await client.get_shell_msg(timeout=WAIT)
    assert info["content"]["implementation"] == "kernelgate-test-kernel"
    content, results = await run_code(client, "6*7")
    assert results == ["42"]
    assert await comm.request_shutdown(conn) is True
    assert await launch.exit_status() == 0


async def test_unreachable_gateway_makes_the_launcher_fail_and_stop_its_kernel(launches, keys):
    kernel_id = str(uuid.uuid4())
    with socket_without_listener() as port:
        launch = await launches(
            "--kernel-id",
            kernel_id,
            "--response-address",
            f"127.0.0.1:{port}",
            "--public-key",
            keys.public_key,
            "--ip",
            "127.0.0.65",
            "--response-timeout",
            "1",
            kernel_id=kernel_id,
        )
        assert await launch.exit_status() == 1
    assert not processes_mentioning(kernel_id)


async def test_launcher_keeps_trying_until_the_gateway_listens(launches, keys):
    kernel_id = str(uuid.uuid4())
    with socket_without_listener() as port:  # kept from other programs until the gateway listens on it
        launch = await launches(
            "--kernel-id",
            kernel_id,
            "--response-address",
            f"127.0.0.1:{port}",
            "--public-key",
            keys.public_key,
            "--ip",
            "127.0.0.66",
            kernel_id=kernel_id,
            capture_stderr=True,
        )
        assert launch.process.stderr is not None
        while True:  # until the launcher has failed to connect at least once
            line = await asyncio.wait_for(launch.process.stderr.readline(), WAIT)
            assert line, "the launcher exited instead of retrying"
            if b"not reachable yet" in line:
                break
        late_listener = ResponseListener(host="127.0.0.1", port=port, keys=keys)
        pending = late_listener.expect(kernel_id, source_ip="127.0.0.66", timeout=WAIT)  # expected before it listens
        await late_listener.start()
        try:
            launch.conn = await pending
        finally:
            await late_listener.stop()
    launch.process.send_signal(signal.SIGTERM)
    assert await launch.exit_status() == 0


def test_bad_options_exit_2_without_starting_anything(capsys):
    assert launcher_main(["--kernel-id", "k", "--response-address", "127.0.0.1:1"], env={}) == 2
    assert "public key" in capsys.readouterr().err
    assert launcher_main(["--kernel-id", "k", "--response-address", "nowhere", "--public-key", "x"], env={}) == 2
    assert launcher_main(["--kernel-id", "k", "--response-address", "h:1", "--public-key", "bm90IGEga2V5"], env={}) == 2


class socket_without_listener:
    """A port on 127.0.0.1 that is bound but refuses connections.

    No other program can take the port meanwhile, but a listener setting
    ``SO_REUSEADDR`` (as asyncio's servers do) can listen on it.
    """

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return self._sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
