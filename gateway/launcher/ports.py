"""Choosing free TCP ports for a kernel, optionally within a port range."""

from __future__ import annotations

import random
import socket

MAX_ATTEMPTS_PER_PORT = 100


def reserve_ports(bind_ip: str, count: int, port_range: tuple[int, int] | None) -> list[socket.socket]:
    """Bind ``count`` distinct TCP sockets on ``bind_ip`` (called once by the launcher at start).

    The caller keeps the one it listens on itself and hands the others to the
    kernel (:func:`share_with_kernel`, or closing them just before starting a
    kernel it cannot share with).  Without a range the system picks the ports;
    with one, random candidates inside it are tried.  Raises ``OSError`` when
    no free port can be found.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(_bind_one(bind_ip, port_range, taken={s.getsockname()[1] for s in sockets}))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bind_one(bind_ip: str, port_range: tuple[int, int] | None, taken: set[int]) -> socket.socket:
    attempts = 1 if port_range is None else MAX_ATTEMPTS_PER_PORT
    last_error: OSError | None = None
    for _ in range(attempts):
        port = 0 if port_range is None else random.randint(*port_range)
        if port in taken:
            continue
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((bind_ip, port))
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        return sock
    where = "" if port_range is None else f" in {port_range[0]}..{port_range[1]}"
    raise OSError(f"no free port{where} on {bind_ip}") from last_error


def share_with_kernel(sockets: list[socket.socket]) -> None:
    """Let a ZeroMQ kernel bind these ports while the launcher keeps them bound (called before the kernel starts).

    Were the ports released before the kernel starts, another socket could take
    one while the kernel is still importing (the launcher's own outgoing
    connection bound to the pod address, or any process sharing that address)
    and the kernel would exit with "Address already in use".  A bound socket
    that never listens, once ``SO_REUSEADDR`` is set, keeps every other socket
    off its port (Linux refuses a conflicting bind unless both sockets set the
    option, and never hands out such a port for an automatic bind) but lets a
    listener with ``SO_REUSEADDR`` bind it, which ZeroMQ sets on every TCP
    listener outside Windows (libzmq src/tcp_listener.cpp; the bind rules are
    Linux's net/ipv4/inet_connection_sock.c ``inet_csk_bind_conflict``).  The option is set after ``bind`` so that the reservation itself
    still conflicts with everything bound before.  The caller closes the
    sockets when the kernel has exited.
    """
    for sock in sockets:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
