"""A client session's identity on its sockets to a kernel: the same on every replica, its key's alone.

The kernel's ROUTER routes a reply to the identity its request came from, so a session whose next
websocket reaches another replica gets there the replies to what it asked here only if that replica
makes the same identity (:func:`gateway.http.podlink.client_identity`).
"""

from __future__ import annotations

from gateway.http.podlink import client_identity
from gateway.provisioner.connection import ConnectionInfo

KEY = "5a1d7c4e-3b9f-4c2a-8e61-0d9f7b2c4a13"


def connection(key: str = KEY) -> ConnectionInfo:
    return ConnectionInfo(kernel_id="k-1", ip="10.0.0.7", shell_port=1, iopub_port=2, stdin_port=3, control_port=4,
                          hb_port=5, key=key)


def test_every_replica_makes_the_same_identity_for_a_session() -> None:
    assert client_identity(connection(), "s-1", "python") == client_identity(connection(), "s-1", "Python")


def test_sessions_and_kernels_have_identities_of_their_own() -> None:
    identities = {client_identity(connection(), "s-1", "python"), client_identity(connection(), "s-2", "python"),
                  client_identity(connection("another key"), "s-1", "python")}
    assert len(identities) == 3


def test_the_identity_says_neither_the_key_nor_the_session() -> None:
    identity = client_identity(connection(), "session-of-alice", "python")
    assert identity is not None and len(identity) == 32 and not identity.startswith(b"\0")
    assert b"alice" not in identity and KEY[:8].encode() not in identity


def test_no_session_or_a_kernel_that_does_not_hand_over_gets_none() -> None:
    assert client_identity(connection(), "", "python") is None
    assert client_identity(connection(), "s-1", "R") is None
    assert client_identity(connection(), "s-1", "scala") is None
