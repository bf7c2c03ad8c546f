"""A kernel that is not Python's (``--kernel-cmd``: IRkernel, almond, Toree) as the launcher's child process.

Such a kernel cannot run in the launcher's process, so the launcher starts
it (:class:`~gateway.launcher.kernel.KernelProcess`), sends the payload,
serves the comm port for it and stops it on request.  IPython kernels run in
the launcher's own process instead (:mod:`gateway.launcher.inprocess`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping

from . import protocol
from .comm import CommServer
from .connection import remove_file, reserve_kernel_ports, sealed_payload, write_connection_file
from .delivery import start_delivery
from .kernel import KernelProcess
from .options import LaunchOptions

log = logging.getLogger("gateway.launcher")


def run(options: LaunchOptions, response_key: protocol.ResponseKey, env: Mapping[str, str]) -> int:
    """Run the kernel command until it exits or is stopped; returns the exit status (called by ``main``).

    The kernel's own status when it exits by itself; 0 when the gateway asked
    for a shutdown or the launcher got SIGTERM/SIGINT; 1 when the payload
    could not be delivered.
    """
    return asyncio.run(_run(options, response_key, env))


async def _run(options: LaunchOptions, response_key: protocol.ResponseKey, env: Mapping[str, str]) -> int:
    assert options.kernel_cmd is not None
    try:
        kernel_sockets, comm_socket, info = reserve_kernel_ports(options.bind_ip, options.port_range)
    except OSError as exc:
        log.error("cannot start the kernel: %s", exc)
        return 1
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    kernel: KernelProcess | None = None

    def on_signal(signum: int) -> None:
        if kernel is not None:
            kernel.send_signal(signum)

    comm_socket.listen(16)
    comm = CommServer(
        kernel_id=options.kernel_id,
        key=info["key"],
        on_signal=lambda signum: loop.call_soon_threadsafe(on_signal, signum),
        on_shutdown=lambda: loop.call_soon_threadsafe(stop_requested.set),
    )
    comm.start(comm_socket)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)

    connection_file = write_connection_file(options.kernel_id, info)
    try:
        for sock in kernel_sockets:  # another kernel may not set SO_REUSEADDR: the ports are released
            sock.close()
        command = options.kernel_argv(connection_file)
        assert command is not None
        try:
            kernel = await KernelProcess.start(connection_file, info, env, command)
        except OSError as exc:  # e.g. the --kernel-cmd program is not installed in this image
            log.error("cannot start the kernel: %s", exc)
            return 1
        payload = sealed_payload(
            info, comm_port=comm_socket.getsockname()[1], kernel_id=options.kernel_id, key=response_key
        )
        sending: asyncio.Future[None] = loop.create_future()

        def delivered(failure: BaseException | None) -> None:
            def settle() -> None:
                if sending.done():
                    return
                if failure is None:
                    sending.set_result(None)
                else:
                    sending.set_exception(failure)

            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:  # the loop is closed: the launcher has stopped already
                pass

        start_delivery(options, payload, delivered)
        return await _supervise(kernel, sending, stop_requested)
    finally:
        if kernel is not None and kernel.returncode is None:
            await kernel.stop()
        comm.close()
        remove_file(connection_file)


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
        if exited.done():
            return True  # the kernel's own exit status is reported below
        return False
    if sending.exception() is not None:
        log.error("could not deliver the connection info: %s", sending.exception())
        return False
    return True
