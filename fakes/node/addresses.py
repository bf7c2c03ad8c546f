"""Pod addresses on the simulated node: each pod gets its own loopback address, as each pod on a real
node gets its own IP, so kernels bind their ports as they would in a pod.

Used by :class:`fakes.node.kubelet.NodeAgent` when a pod starts (and to keep an address a pod
already had when an agent restarts).
"""

from __future__ import annotations

import ipaddress
import random


class LoopbackPool:
    """Pod IPs in 127.1.0.1-127.254.255.254: unique among live pods of every agent in this process.

    Addresses are handed out round-robin, so a freed address is not reused
    soon and a stale client does not reach a newer pod.  Each process starts
    at a random address: simulated nodes of other processes on the machine
    (test runs side by side) then rarely give their pods the same addresses,
    whose ports would be shared as on one host.
    """

    _FIRST = int(ipaddress.IPv4Address("127.1.0.1"))
    _LAST = int(ipaddress.IPv4Address("127.254.255.254"))

    def __init__(self) -> None:
        self._used: set[int] = set()
        self._next = self._FIRST + random.randrange(self._LAST - self._FIRST + 1)

    def allocate(self) -> str:
        span = self._LAST - self._FIRST + 1
        for _ in range(span):
            candidate, self._next = self._next, self._FIRST + (self._next + 1 - self._FIRST) % span
            if candidate in self._used or candidate & 0xFF in (0, 255):
                continue
            self._used.add(candidate)
            return str(ipaddress.IPv4Address(candidate))
        raise RuntimeError("no free loopback address for a pod")

    def reserve(self, ip: str) -> bool:
        """Take ``ip`` (a pod's address from an earlier agent) when it is in range and free."""
        try:
            value = int(ipaddress.IPv4Address(ip))
        except ValueError:
            return False
        if not self._FIRST <= value <= self._LAST or value in self._used:
            return False
        self._used.add(value)
        return True

    def release(self, ip: str) -> None:
        self._used.discard(int(ipaddress.IPv4Address(ip)))


POD_IPS = LoopbackPool()
"""Shared by every node agent in the process, so two simulated nodes never hand out the same address."""
