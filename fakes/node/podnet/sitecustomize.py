"""Inside a pod of the simulated node: the pod's IPv4 sockets use the pod's own address.

On a real node each pod has a network namespace: ``0.0.0.0`` means the pod's address, and a
connection the pod opens leaves from it.  On the simulated node every pod shares this host's
network, each with a loopback address of its own (``fakes.node.addresses``); Python programs
in a pod get the same two rules from this module, which Python imports at start-up because the
node puts this directory first on every pod's ``PYTHONPATH`` (``fakes.node.sandbox``):

* a bind of ``0.0.0.0`` (or ``""``) to a given port lands on the pod's address, so two pods may
  both serve on ``0.0.0.0:8888``.  A wildcard bind to port 0 (any free port) stays on the
  wildcard, so the port it gets is free on every address: a program that picks a port so and
  hands it to a library binding ``0.0.0.0`` itself can bind it there (EG's launcher picks
  ipykernel's ZMQ ports so, and libzmq's binds are not Python's);
* a socket that connects to a loopback address (the simulated cluster: the gateway's response
  listener, the API server, other pods) without having been bound is first bound to the pod's
  address with a port the system picks.  Its peer then sees the pod's address, as it would on a
  real cluster: the gateway's check that a kernel's connection information comes from the
  kernel's pod holds for any launcher, one that binds its socket or one that does not (Enterprise
  Gateway's ``launch_ipykernel.py``).  Connections elsewhere (the Internet) leave as the host
  routes them.

Why not a network namespace per pod: pod addresses are loopback addresses, which Linux keeps to
its ``lo`` device; routing them through a veth pair takes host-wide route and ``route_localnet``
changes that would reach every other program on the machine, and the node would then need root
for every pod.  This module needs neither.  It covers Python programs only (not ``-I``/``-E``
interpreters, not sockets made by C libraries such as libzmq), which are what the simulated
node runs: launchers, kernels, the gateway; an image's own ``sitecustomize``, if it has one, is
shadowed by this one.

The pod's address comes from the ``SIMULATED_POD_IP`` variable the node sets in each container
of a pod that has its own address; without it (a host-network pod, a program outside any pod)
sockets are left alone.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

ADDRESS_VARIABLE = "SIMULATED_POD_IP"
"""The variable naming the pod's address, set by the simulated node (``fakes.node.sandbox``)."""
WILDCARDS = ("", "0.0.0.0")


def is_loopback(host: Any) -> bool:
    """Whether ``host`` (an address or a name, as given to ``connect``) is an IPv4 loopback address."""
    if not isinstance(host, str):
        return False
    try:
        return ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None, socket.AF_INET)
    except OSError:
        return False
    return bool(found) and all(ipaddress.IPv4Address(entry[4][0]).is_loopback for entry in found)


def install(address: str) -> None:
    """Make ``socket.socket`` bind wildcard binds to a given port and unbound loopback connections to ``address``."""
    original_bind = socket.socket.bind
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def bind(self: socket.socket, where: Any) -> None:
        if self.family == socket.AF_INET and isinstance(where, tuple) and where[0] in WILDCARDS and where[1]:
            where = (address, *where[1:])
        original_bind(self, where)

    def bind_before_connect(sock: socket.socket, where: Any) -> None:
        if sock.family != socket.AF_INET or not isinstance(where, tuple) or not is_loopback(where[0]):
            return
        try:
            if sock.getsockname() != ("0.0.0.0", 0):
                return  # bound by the program itself
            original_bind(sock, (address, 0))
        except OSError:
            pass  # connected already, or closed: connect itself says so

    def connect(self: socket.socket, where: Any) -> None:
        bind_before_connect(self, where)
        original_connect(self, where)

    def connect_ex(self: socket.socket, where: Any) -> int:
        bind_before_connect(self, where)
        return original_connect_ex(self, where)

    socket.socket.bind = bind  # type: ignore[method-assign,assignment]
    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]


def _install_for_this_pod() -> None:
    address = os.environ.get(ADDRESS_VARIABLE, "")
    try:
        valid = ipaddress.IPv4Address(address).is_loopback
    except ValueError:
        valid = False
    if valid:
        install(address)


_install_for_this_pod()
