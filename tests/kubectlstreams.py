"""kubectl's streaming commands as the tests drive them: on a terminal, and port-forward while it runs.

Used by ``tests/test_kubectl_streaming.py`` and the tips in ``tests/test_kubectl_tips.py``.
:func:`in_terminal` runs kubectl on a pseudo-terminal (``exec -it`` refuses anything else),
:func:`forwarding` runs ``kubectl port-forward`` and yields the local port once kubectl says
it forwards, :func:`http_request` sends one request to such a port.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

from tests.kubectlclient import KUBECTL_TIMEOUT, Kubectl


def in_terminal(env: dict[str, str], args: list[str], typed: bytes, rows: int = 24,
                columns: int = 80) -> tuple[int, str]:
    """Run kubectl on a terminal of ``rows`` x ``columns``, type ``typed``, read until it exits.

    Blocking: tests call it through ``asyncio.to_thread``.  Returns kubectl's exit code and all it wrote.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen(["kubectl", *args], env=env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    os.write(master, typed)
    output = b""
    deadline = time.monotonic() + KUBECTL_TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], deadline - time.monotonic())
            if not ready:
                break
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: kubectl exited and the terminal is closed
                break
            if not data:
                break
            output += data
        return proc.wait(timeout=KUBECTL_TIMEOUT), output.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


@contextlib.asynccontextmanager
async def forwarding(kubectl: Kubectl, transport: dict[str, str], *args: str) -> AsyncIterator[int]:
    """``kubectl port-forward args`` running (with ``transport``'s environment); yields the local port
    once kubectl prints its ``Forwarding from`` line, and stops kubectl on exit."""
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "port-forward", "--address=127.0.0.1", *args, env={**kubectl.env, **transport},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), KUBECTL_TIMEOUT)).decode()
        found = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", line)
        if found is None:
            raise AssertionError(f"kubectl port-forward {' '.join(args)}: {line}{(await proc.stderr.read()).decode()}")
        yield int(found.group(1))
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.communicate()


def http_request(port: int, path: str = "/", method: str = "GET", body: Any = None) -> tuple[int, bytes]:
    """One HTTP request to ``127.0.0.1:port`` (blocking: call it through ``asyncio.to_thread``)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=KUBECTL_TIMEOUT) as response:
        return response.status, response.read()
