"""A gateway follows more kernels than ZMQ's default socket limit allows.

``kernelgate serve`` holds an iopub socket for every running kernel it follows; with ZMQ's default
of 1,023 sockets per context a gateway stopped at about a thousand kernels (``ZMQError: Too many
open files``).  Each check runs in a fresh interpreter, whose ZMQ context and open-file limit are
its own.
"""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

KERNELS = 1500

OPEN_SUB_SOCKETS = f"""
import zmq, zmq.asyncio
from gateway.kernels.channels import allow_many_sockets
PREPARE
context = zmq.asyncio.Context.instance()
sockets = []
for port in range({KERNELS}):
    sub = context.socket(zmq.SUB)
    sub.connect(f"tcp://127.0.0.1:{{20000 + port % 40000}}")
    sockets.append(sub)
print(len(sockets))
for sub in sockets:
    sub.close(linger=0)
"""


def _run(prepare: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", OPEN_SUB_SOCKETS.replace("PREPARE", prepare)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_NOFILE)[1] not in (resource.RLIM_INFINITY,)
                    and resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 4 * KERNELS,
                    reason="this machine's hard open-file limit is below what the check needs")
def test_the_gateway_process_opens_a_socket_per_kernel_past_zmqs_default_limit() -> None:
    default = _run("")
    assert default.returncode != 0 and "Too many open files" in default.stderr, default.stderr[-500:]

    allowed = _run("allow_many_sockets()")
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert allowed.stdout.strip() == str(KERNELS)
