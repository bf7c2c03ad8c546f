"""Choosing free TCP ports for a kernel, optionally within a port range."""

from __future__ import annotations

import random
import socket

MAX_ATTEMPTS_PER_PORT = 100


def reserve_ports(bind_ip: str, count: int, port_range: tuple[int, int] | None) -> list[socket.socket]:
    """Bind ``count`` distinct TCP sockets on ``bind_ip`` (called once by the launcher at start).

    The caller closes the sockets it hands to the kernel just before starting
    it, and keeps the one it listens on itself.  Without a range the system
    picks the ports; with one, random candidates inside it are tried.
    Raises ``OSError`` when no free port can be found.
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
