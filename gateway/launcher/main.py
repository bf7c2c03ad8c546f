"""The launcher's life: ports, kernel, payload, comm port, exit.

Exit status: the kernel's own when it exits by itself; 0 when the gateway
asked for a shutdown or the launcher was sent SIGTERM/SIGINT and the kernel
stopped; 1 when the payload could not be delivered; 2 for bad options.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from . import protocol
from .comm import CommServer
from .kernel import KernelProcess
from .options import LaunchOptions, UsageError, parse_options
from .ports import reserve_ports, share_with_kernel

log = logging.getLogger("gateway.launcher")

CONNECT_BACKOFF_START = 0.1
CONNECT_BACKOFF_MAX = 2.0
CONNECT_ATTEMPT_TIMEOUT = 5.0


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point of ``python -m gateway.launcher``."""
    env = os.environ if env is None else env
    logging.basicConfig(
        level=env.get("LOG_LEVEL") or env.get("EG_LOG_LEVEL") or "INFO",
        format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s",
    )
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv, env)
        key = protocol.ResponseKey.choose(options.public_keys)
    except (UsageError, protocol.PayloadError) as exc:
        print(f"gateway.launcher: {exc}", file=sys.stderr)
        return 2
    if options.language != "python" and options.kernel_cmd is None:
        log.warning("KERNEL_LANGUAGE=%s without --kernel-cmd: running an IPython kernel", options.language)
    if options.spark_context_initialization_mode != "none":
        log.warning("no Spark context is created: this launcher supports spark-context-initialization-mode none only")
    return asyncio.run(_run(options, key, env))


async def _run(options: LaunchOptions, response_key: protocol.ResponseKey, env: Mapping[str, str]) -> int:
    try:
        sockets = reserve_ports(options.bind_ip, 6, options.port_range)
    except OSError as exc:
        log.error("cannot start the kernel: %s", exc)
        return 1
    kernel_sockets, comm_socket = sockets[:5], sockets[5]
    info = _connection_file_info([s.getsockname()[1] for s in kernel_sockets], options.bind_ip)
    stop_requested = asyncio.Event()
    kernel: KernelProcess | None = None

    def on_signal(signum: int) -> None:
        if kernel is not None:
            kernel.send_signal(signum)

    # The comm port listens before the payload goes out, so the gateway can signal as soon as it knows the port.
    comm_socket.listen(16)
    comm = CommServer(kernel_id=options.kernel_id, key=info["key"], on_signal=on_signal, on_shutdown=stop_requested.set)
    await comm.start(comm_socket)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)

    connection_file = _write_connection_file(options.kernel_id, info)
    try:
        if options.kernel_cmd is None:
            share_with_kernel(kernel_sockets)  # the IPython kernel listens through ZeroMQ
        else:
            for sock in kernel_sockets:  # another kernel may not set SO_REUSEADDR: the ports are released
                sock.close()
        try:
            kernel = await KernelProcess.start(
                connection_file, info, options.kernel_class_name, env, options.kernel_argv(connection_file)
            )
        except OSError as exc:  # e.g. the --kernel-cmd program is not installed in this image
            log.error("cannot start the kernel: %s", exc)
            return 1
        payload = _seal(
            dict(
                info,
                comm_port=comm_socket.getsockname()[1],
                pid=os.getpid(),
                pgid=os.getpgid(0),
                kernel_id=options.kernel_id,
            ),
            options.kernel_id,
            response_key,
        )
        return await _supervise(kernel, asyncio.ensure_future(_deliver(options, payload)), stop_requested)
    finally:
        if kernel is not None and kernel.returncode is None:
            await kernel.stop()
        await comm.close()
        for sock in kernel_sockets:
            sock.close()
        _remove(connection_file)


def _connection_file_info(ports: Sequence[int], bind_ip: str) -> dict[str, Any]:
    """The kernel's connection file, with a fresh random key for signing its messages."""
    shell, iopub, stdin, control, hb = ports
    return {
        "shell_port": shell,
        "iopub_port": iopub,
        "stdin_port": stdin,
        "control_port": control,
        "hb_port": hb,
        "ip": bind_ip,
        "key": secrets.token_hex(32),
        "transport": "tcp",
        "signature_scheme": "hmac-sha256",
    }


async def _supervise(kernel: KernelProcess, sending: asyncio.Future, stop_requested: asyncio.Event) -> int:
    """Wait for the kernel to exit or for a stop request; returns the launcher's exit status."""
    exited = asyncio.ensure_future(kernel.wait())
    stopping = asyncio.ensure_future(stop_requested.wait())
    try:
        if not await _payload_delivered(sending, exited, stopping):
            await kernel.stop()
            return 0 if stopping.done() else 1
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if exited.done():
        status = exited.result()
        log.info("kernel exited with status %d", status)
        return status
    status = await kernel.stop()
    log.info("kernel stopped on request (status %d)", status)
    return 0


async def _payload_delivered(sending: asyncio.Future, exited: asyncio.Future, stopping: asyncio.Future) -> bool:
    """Wait for the payload to go out; ``False`` if it failed or we must stop first."""
    await asyncio.wait({sending, exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not sending.done():
        sending.cancel()
        if exited.done():
            return True  # the kernel's own exit status is reported below
        return False
    if sending.exception() is not None:
        log.error("could not deliver the connection info: %s", sending.exception())
        return False
    return True


def _seal(info: Mapping[str, Any], kernel_id: str, key: protocol.ResponseKey) -> bytes:
    if key.x25519 is not None:
        return protocol.seal_v2(info, kernel_id, key.x25519)
    assert key.rsa is not None
    log.warning("the gateway gave an RSA key: sending the legacy (unauthenticated) payload format")
    return protocol.seal_v1(info, key.rsa)


async def _deliver(options: LaunchOptions, payload: bytes) -> None:
    """Send the payload to the response address, retrying with backoff until the response timeout.

    In the simulated cluster each pod has its own loopback address; binding
    the outgoing socket to it makes the gateway see the pod IP as the peer,
    as it would in a real cluster.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.response_timeout
    local_addr = None if options.bind_ip == "0.0.0.0" else (options.bind_ip, 0)
    delay = CONNECT_BACKOFF_START
    while True:
        remaining = deadline - loop.time()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(options.response_host, options.response_port, local_addr=local_addr),
                min(CONNECT_ATTEMPT_TIMEOUT, max(remaining, 0.01)),
            )
            try:
                writer.write(payload)
                writer.write_eof()
                await asyncio.wait_for(writer.drain(), CONNECT_ATTEMPT_TIMEOUT)
            finally:
                writer.close()
            log.info("connection info sent to %s:%d", options.response_host, options.response_port)
            return
        except (OSError, asyncio.TimeoutError) as exc:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"gave up reaching {options.response_host}:{options.response_port}") from exc
            log.info("response address not reachable yet (%s); retrying", exc.__class__.__name__)
            await asyncio.sleep(min(delay, remaining))  # backoff between connection attempts, not a state wait
            delay = min(delay * 2, CONNECT_BACKOFF_MAX)


def _write_connection_file(kernel_id: str, info: Mapping[str, Any]) -> str:
    """The kernel's connection file, readable by this user only."""
    safe_id = re.sub(r"[^A-Za-z0-9-]", "", kernel_id)[:36]
    fd, path = tempfile.mkstemp(prefix=f"kernel-{safe_id}-", suffix=".json")
    with os.fdopen(fd, "w") as handle:  # mkstemp creates the file with mode 0600
        json.dump(dict(info), handle)
    return path


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
