"""Sending the sealed payload to the gateway's response address, retrying until the response timeout."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

from .options import LaunchOptions

log = logging.getLogger("gateway.launcher")

CONNECT_BACKOFF_START = 0.1
CONNECT_BACKOFF_MAX = 2.0
CONNECT_ATTEMPT_TIMEOUT = 5.0


def deliver(options: LaunchOptions, payload: bytes) -> None:
    """Send ``payload`` to the response address (blocking; run on a thread of its own by :func:`start_delivery`).

    In the simulated cluster each pod has its own loopback address; binding
    the outgoing socket to it makes the gateway see the pod IP as the peer,
    as it would in a real cluster.  Raises ``TimeoutError`` when the gateway
    could not be reached within the response timeout.
    """
    deadline = time.monotonic() + options.response_timeout
    source = None if options.bind_ip == "0.0.0.0" else (options.bind_ip, 0)
    address = (options.response_host, options.response_port)
    delay = CONNECT_BACKOFF_START
    while True:
        remaining = deadline - time.monotonic()
        try:
            with socket.create_connection(
                address, timeout=min(CONNECT_ATTEMPT_TIMEOUT, max(remaining, 0.01)), source_address=source
            ) as conn:
                conn.settimeout(CONNECT_ATTEMPT_TIMEOUT)
                conn.sendall(payload)
                conn.shutdown(socket.SHUT_WR)
            log.info("connection info sent to %s:%d", *address)
            return
        except OSError as exc:  # refused, unreachable, or timed out (socket.timeout is an OSError)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"gave up reaching {address[0]}:{address[1]}") from exc
            log.info("response address not reachable yet (%s); retrying", exc.__class__.__name__)
            time.sleep(min(delay, remaining))  # backoff between connection attempts, not a state wait
            delay = min(delay * 2, CONNECT_BACKOFF_MAX)


def start_delivery(options: LaunchOptions, payload: bytes, done: Callable[[BaseException | None], None]) -> None:
    """Deliver ``payload`` from a daemon thread, then call ``done`` with ``None`` or the failure (on that thread).

    Called by the launcher as soon as the payload is sealed, while the kernel is still starting: the
    gateway connects its channels meanwhile, and ZeroMQ holds its first request until the kernel binds.
    A daemon thread, so that a launcher whose kernel stopped first exits without waiting for it.
    """

    def send() -> None:
        try:
            deliver(options, payload)
        except Exception as exc:  # reported to the launcher, which stops the kernel
            done(exc)
        else:
            done(None)

    threading.Thread(target=send, name="payload-delivery", daemon=True).start()
