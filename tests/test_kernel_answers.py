"""Kernels that answer, or not, what the gateway asks them over their channels: what the HTTP client sees.

A kernel whose launcher called back but which never answers ``kernel_info_request`` is not a
kernel a client can use: its start is answered 504 and nothing of it is left.  A kernelspec with
``interrupt_mode: message`` is interrupted with ``interrupt_request`` on the control channel, not
with a signal.  The gateway runs on the embedded simulated cluster (tests/httpharness.py) with
kernelspec variants of the shipped ``python_kubernetes``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.gatewayharness import kernelspec_variant
from tests.httpharness import USER, WAIT, execute, running_gateway

pytestmark = pytest.mark.slow

SLEEP = "import time; print('sleeping', flush=True); time.sleep(120)"


# The launcher starts, reserves the kernel's ports and calls back, but its "kernel" binds none of them: it prints
# its connection info (key included, as EG's launcher logs it) and why it will not serve, then sleeps.
MUTE = ("python -c 'import json, sys, time; info = json.load(open(sys.argv[1])); print(json.dumps(info)); "
        "print(\"the key is\", info[\"key\"]); print(\"cannot bind the shell port\", flush=True); time.sleep(300)' "
        "{connection_file}")


async def test_a_kernel_that_never_answers_kernel_info_is_a_504_quoting_its_log_and_leaves_nothing(
        tmp_path: Path) -> None:
    specs = kernelspec_variant(tmp_path / "specs", "python_mute", env={"LAUNCHER_KERNEL_CMD": MUTE})
    async with running_gateway(tmp_path, kernel_spec_paths=[str(specs)]) as gw:
        before = await gw.objects()
        status, body, _ = await gw.call("POST", "/api/kernels", {
            "name": "python_mute", "env": {"KERNEL_USERNAME": USER, "KERNEL_LAUNCH_TIMEOUT": "3"}})
        assert status == 504, body
        message = body["message"]
        assert "started but did not answer a kernel_info_request (its shell socket is not connected: " in message
        assert "Connection refused" in message  # nothing listens: the kernel's side, not the network's
        assert "; last log lines: " in message
        assert message.endswith("the key is <hidden> | cannot bind the shell port"), message
        assert '"key": "<hidden>"' in message and '"shell_port": ' in message
        assert (await gw.call("GET", "/api/kernels"))[1] == []
        assert await gw.objects() == before


# Kernels that bind the shell port but do not answer on it: one whose port takes the TCP connection and never
# speaks ZMTP, and one whose ROUTER completes the handshake and never replies.
SILENT_LISTENER = ("python -c 'import json, socket, sys, time; info = json.load(open(sys.argv[1])); "
                   "s = socket.socket(); s.bind((\"0.0.0.0\", info[\"shell_port\"])); s.listen(); time.sleep(300)' "
                   "{connection_file}")
SILENT_ROUTER = ("python -c 'import json, sys, time, zmq; info = json.load(open(sys.argv[1])); "
                 "s = zmq.Context().socket(zmq.ROUTER); s.bind(\"tcp://0.0.0.0:%d\" % info[\"shell_port\"]); "
                 "time.sleep(300)' {connection_file}")


@pytest.mark.parametrize(("kernel_cmd", "condition"), [
    (SILENT_LISTENER, "connected, but the port has not answered the ZMTP handshake"),
    (SILENT_ROUTER, "connected"),
])
async def test_the_504_of_a_kernel_that_binds_but_never_answers_says_how_far_the_gateway_got(
        tmp_path: Path, kernel_cmd: str, condition: str) -> None:
    specs = kernelspec_variant(tmp_path / "specs", "python_silent", env={"LAUNCHER_KERNEL_CMD": kernel_cmd})
    async with running_gateway(tmp_path, kernel_spec_paths=[str(specs)]) as gw:
        status, body, _ = await gw.call("POST", "/api/kernels", {
            "name": "python_silent", "env": {"KERNEL_USERNAME": USER, "KERNEL_LAUNCH_TIMEOUT": "3"}})
        assert status == 504, body
        assert f"did not answer a kernel_info_request (its shell socket is {condition})" in body["message"], body


async def test_interrupt_mode_message_interrupts_with_a_request_not_a_signal(tmp_path: Path) -> None:
    # The kernelspec's interrupt signal would end the kernel (SIGUSR2 is not handled by ipykernel), so only
    # an interrupt_request, which the kernel answers by interrupting itself, stops the cell and keeps the kernel.
    specs = kernelspec_variant(tmp_path / "specs", "python_message", interrupt_mode="message",
                               env={"EG_ALTERNATE_SIGINT": "SIGUSR2"})
    async with running_gateway(tmp_path, kernel_spec_paths=[str(specs)]) as gw:
        status, kernel, _ = await gw.call("POST", "/api/kernels", {"name": "python_message",
                                                                   "env": {"KERNEL_USERNAME": USER}})
        assert status == 201, kernel
        ws = await gw.websocket(kernel["id"])
        sleeping = asyncio.Event()
        running = asyncio.create_task(execute(ws, SLEEP, on_output=sleeping.set))
        await asyncio.wait_for(sleeping.wait(), WAIT)

        status, _, _ = await gw.call("POST", f"/api/kernels/{kernel['id']}/interrupt")

        assert status == 204
        done = await asyncio.wait_for(running, WAIT)
        assert done.reply["status"] == "error" and done.reply["ename"] == "KeyboardInterrupt"
        assert (await execute(ws, "1+1")).results == ["2"]
        status, model, _ = await gw.call("GET", f"/api/kernels/{kernel['id']}")
        assert status == 200 and model["execution_state"] == "idle"
        ws.close()
