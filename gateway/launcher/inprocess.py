"""An IPython kernel in the launcher's own process: one process per kernel pod.

The main thread reserves the ports, writes the connection file, starts the
comm port's thread, then imports ipykernel and runs the kernel on those ports
until it stops.  Enterprise Gateway's launcher does the same, and it is what
keeps a kernel pod's memory that of the kernel alone.  Unlike EG's, it sends
the payload (from a thread of its own) once the kernel's sockets listen, not
before ipykernel is imported: the gateway's first connection to the kernel is
taken, not refused again and again while the kernel imports.  Nothing on the
way to the kernel imports more than ipykernel itself does: no asyncio of our
own, no ``cryptography`` (the payload is sealed by
:mod:`gateway.launcher.purecrypto`).

Interrupts reach the kernel as signals to this process (its process group
when it leads one: see :func:`~gateway.launcher.lifecycle.signal_kernel`);
SIGINT before the kernel runs is ignored, as the kernel itself ignores it
when idle.  SIGTERM (the kubelet stopping the pod) and a shutdown on the
comm port stop the kernel as :class:`~gateway.launcher.lifecycle.KernelLife`
describes.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any

from . import protocol
from .comm import CommServer
from .connection import remove_file, reserve_kernel_ports, sealed_payload, write_connection_file
from .delivery import start_delivery
from .lifecycle import KernelLife, signal_kernel
from .options import LaunchOptions
from .ports import share_with_kernel

log = logging.getLogger("gateway.launcher")


def run(options: LaunchOptions, response_key: protocol.ResponseKey, env: Mapping[str, str]) -> int:
    """Run the kernel; returns the exit status (called once by :func:`gateway.launcher.main.main`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        kernel_sockets, comm_socket, info = reserve_kernel_ports(options.bind_ip, options.port_range)
    except OSError as exc:
        log.error("cannot start the kernel: %s", exc)
        return 1
    share_with_kernel(kernel_sockets)  # ZeroMQ binds them while they stay reserved
    life = KernelLife(info)
    # The comm port listens before the payload goes out, so the gateway can signal as soon as it knows the port.
    comm_socket.listen(16)
    comm = CommServer(kernel_id=options.kernel_id, key=info["key"], on_signal=signal_kernel, on_shutdown=life.stop)
    comm.start(comm_socket)
    signal.signal(signal.SIGTERM, life.stop_from_signal)
    connection_file = write_connection_file(options.kernel_id, info)
    try:
        try:
            payload = sealed_payload(
                info, comm_port=comm_socket.getsockname()[1], kernel_id=options.kernel_id, key=response_key
            )
        except protocol.PayloadError as exc:
            log.error("cannot seal the connection info: %s", exc)
            return 1

        def delivered(failure: BaseException | None) -> None:
            if failure is not None:
                log.error("could not deliver the connection info: %s", failure)
                life.stop(status=1)

        _log_to_the_pods_stderr()
        app = _kernel_app(connection_file, options.kernel_class_name,
                          on_bound=lambda: start_delivery(options, payload, delivered))
        if life.begin():
            app.start()
        status = life.end()
        log.info("kernel stopped (status %d)", status)
        return status
    finally:
        comm.close()
        for sock in kernel_sockets:
            sock.close()
        remove_file(connection_file)


def _kernel_app(connection_file: str, kernel_class_name: str, *, on_bound: Callable[[], None]) -> Any:
    """The IPython kernel application, set up on the connection file's ports and key (imports ipykernel).

    ``on_bound`` is called once the kernel's sockets listen, before the rest of its set-up (the
    shell, IPython's own start-up): the payload goes out then, so the gateway's first connection
    to the kernel is taken rather than refused while ipykernel imports.
    """
    from ipykernel.kernelapp import IPKernelApp

    class BoundKernelApp(IPKernelApp):
        def init_sockets(self) -> None:
            super().init_sockets()
            on_bound()

    app = BoundKernelApp.instance()
    app.initialize(["-f", connection_file, f"--IPKernelApp.kernel_class={kernel_class_name}"])
    return app


def _log_to_the_pods_stderr() -> None:
    """Keep the launcher's log lines in the pod's log once the kernel captures file descriptor 2.

    The kernel sends what is written to its stdout and stderr, down to the file
    descriptors, to its clients: the launcher's own lines (comm requests, the
    stop) belong in the pod's log, not in a notebook.  They go to a copy of
    file descriptor 2 made now, before the kernel redirects it.
    """
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stderr, sys.__stderr__):
            try:
                handler.setStream(os.fdopen(os.dup(2), "w", buffering=1))
            except OSError:
                pass

