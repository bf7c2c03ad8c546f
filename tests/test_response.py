"""The gateway's response listener: which launch payloads it accepts, and that no peer can wedge it.

Payloads travel over real sockets on loopback; distinct 127.0.0.x addresses
stand in for distinct pods.  "Dropped" is observed deterministically: the
listener closes a connection only after it has decided about its payload.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import logging
import os
import socket
import uuid

import pytest
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gateway.aio import fastest_loop_factory
from gateway.launcher import protocol
from gateway.provisioner import comm
from gateway.provisioner.connection import ConnectionInfo
from gateway.provisioner.crypto import GatewayKeys
from gateway.provisioner.response import SOURCE_IP_LATER, ResponseCancelled, ResponseListener, ResponseTimeout

WAIT = 10.0  # upper bound for anything that should happen promptly


@pytest.fixture(scope="module")
def keys() -> GatewayKeys:
    return GatewayKeys(legacy=True)


@pytest.fixture
async def listener(keys):
    async with ResponseListener(host="127.0.0.1", port=0, keys=keys, read_timeout=5.0) as lst:
        yield lst


def connection_info(kernel_id: str, **overrides) -> dict:
    info = {
        "shell_port": 50001,
        "iopub_port": 50002,
        "stdin_port": 50003,
        "control_port": 50004,
        "hb_port": 50005,
        "ip": "0.0.0.0",
        "key": "secret-" + uuid.uuid4().hex,
        "transport": "tcp",
        "signature_scheme": "hmac-sha256",
        "comm_port": 50006,
        "pid": 42,
        "pgid": 42,
        "kernel_id": kernel_id,
    }
    info.update(overrides)
    return info


def v2_payload(listener: ResponseListener, info: dict, kernel_id: str | None = None) -> bytes:
    key = protocol.ResponseKey.parse(listener.public_key).x25519
    assert key is not None
    return protocol.seal_v2(info, kernel_id or info["kernel_id"], key)


def eg_v1_payload(public_key_text: str, info: dict) -> bytes:
    """A version-1 payload built the way EG's launch_ipykernel.py builds it, written independently of ours."""
    public_key = serialization.load_der_public_key(base64.b64decode(public_key_text))
    aes_key = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    body = padder.update(json.dumps(info).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).encryptor()
    envelope = {
        "version": 1,
        "key": base64.b64encode(public_key.encrypt(aes_key, asym_padding.PKCS1v15())).decode(),
        "conn_info": base64.b64encode(encryptor.update(body) + encryptor.finalize()).decode(),
    }
    return base64.b64encode(json.dumps(envelope).encode())


async def send(listener: ResponseListener, payload: bytes, from_ip: str = "127.0.0.1") -> None:
    """Send a payload as a launcher does and wait until the listener has dealt with it (closed on us)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port, local_addr=(from_ip, 0))
    try:
        writer.write(payload)
        writer.write_eof()
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), WAIT) == b""
    finally:
        writer.close()


def new_id() -> str:
    return str(uuid.uuid4())


# --------------------------------------------------------------------------- accepted payloads


async def test_v2_payload_round_trip_replaces_ip_with_pod_ip(listener):
    kernel_id = new_id()
    info = connection_info(kernel_id)
    pending = listener.expect(kernel_id, source_ip="127.0.0.7", timeout=WAIT)
    await send(listener, v2_payload(listener, info), from_ip="127.0.0.7")
    conn = await asyncio.wait_for(pending, WAIT)
    assert conn == ConnectionInfo.from_payload(dict(info, ip="127.0.0.7"))
    assert conn.key == info["key"] and conn.comm_port == 50006
    assert not listener.is_expected(kernel_id)


async def test_eg_v1_payload_round_trip(listener):
    kernel_id = new_id()
    info = connection_info(kernel_id)
    pending = listener.expect(kernel_id, source_ip="127.0.0.8", timeout=WAIT)
    assert listener.legacy_public_key is not None
    await send(listener, eg_v1_payload(listener.legacy_public_key, info), from_ip="127.0.0.8")
    conn = await asyncio.wait_for(pending, WAIT)
    assert (conn.ip, conn.shell_port, conn.key) == ("127.0.0.8", 50001, info["key"])


async def test_without_source_ip_a_wildcard_ip_becomes_the_peer_address(listener):
    kernel_id = new_id()
    pending = listener.expect(kernel_id, timeout=WAIT)
    await send(listener, v2_payload(listener, connection_info(kernel_id)), from_ip="127.0.0.9")
    assert (await asyncio.wait_for(pending, WAIT)).ip == "127.0.0.9"


async def test_payload_held_until_pod_ip_known_then_only_the_pods_accepted(listener):
    kernel_id = new_id()
    pending = listener.expect(kernel_id, source_ip=SOURCE_IP_LATER, timeout=WAIT)
    impostor = connection_info(kernel_id, key="impostor")
    genuine = connection_info(kernel_id, key="genuine")
    for _ in range(20):  # a peer sending many payloads cannot crowd out the pod's own
        await send(listener, v2_payload(listener, impostor), from_ip="127.0.0.20")
    await send(listener, v2_payload(listener, genuine), from_ip="127.0.0.21")
    assert not pending.done()
    pending.set_source_ip("127.0.0.21")
    conn = await asyncio.wait_for(pending, WAIT)
    assert conn.key == "genuine" and conn.ip == "127.0.0.21"


# --------------------------------------------------------------------------- refused payloads


async def expect_still_satisfiable(listener, pending, kernel_id: str, from_ip: str) -> None:
    assert not pending.done() and listener.is_expected(kernel_id)
    await send(listener, v2_payload(listener, connection_info(kernel_id, key="right")), from_ip=from_ip)
    assert (await asyncio.wait_for(pending, WAIT)).key == "right"


async def test_tampered_ciphertext_is_dropped(listener):
    kernel_id = new_id()
    pending = listener.expect(kernel_id, source_ip="127.0.0.1", timeout=WAIT)
    envelope = json.loads(v2_payload(listener, connection_info(kernel_id)))
    ciphertext = bytearray(base64.b64decode(envelope["ct"]))
    ciphertext[5] ^= 0x01
    envelope["ct"] = base64.b64encode(bytes(ciphertext)).decode()
    await send(listener, json.dumps(envelope).encode())
    await expect_still_satisfiable(listener, pending, kernel_id, "127.0.0.1")


async def test_payload_moved_to_another_kernel_id_is_dropped(listener):
    victim, other = new_id(), new_id()
    pending = listener.expect(victim, source_ip="127.0.0.1", timeout=WAIT)
    listener.expect(other, source_ip="127.0.0.1", timeout=WAIT)
    envelope = json.loads(v2_payload(listener, connection_info(other)))
    envelope["kernel_id"] = victim  # the outer id is authenticated data: swapping it breaks the tag
    await send(listener, json.dumps(envelope).encode())
    # sealed for the victim's id, but carrying another kernel's connection info inside
    await send(listener, v2_payload(listener, connection_info(other), kernel_id=victim))
    await expect_still_satisfiable(listener, pending, victim, "127.0.0.1")
    assert listener.cancel(other)


async def test_second_payload_for_the_same_kernel_is_refused(listener):
    kernel_id = new_id()
    pending = listener.expect(kernel_id, source_ip="127.0.0.1", timeout=WAIT)
    first = v2_payload(listener, connection_info(kernel_id, key="first"))
    await send(listener, first)
    assert (await asyncio.wait_for(pending, WAIT)).key == "first"
    await send(listener, first)  # a replay
    await send(listener, v2_payload(listener, connection_info(kernel_id, key="second")))
    assert not listener.is_expected(kernel_id)
    assert (await pending).key == "first"


async def test_payload_for_unexpected_kernel_is_dropped(listener):
    expected = new_id()
    pending = listener.expect(expected, source_ip="127.0.0.1", timeout=WAIT)
    stranger = new_id()
    await send(listener, v2_payload(listener, connection_info(stranger)))
    await send(listener, eg_v1_payload(listener.legacy_public_key, connection_info(stranger)))
    assert not listener.is_expected(stranger)
    await expect_still_satisfiable(listener, pending, expected, "127.0.0.1")


async def test_payload_from_wrong_source_ip_is_dropped(listener):
    kernel_id = new_id()
    pending = listener.expect(kernel_id, source_ip="127.0.0.31", timeout=WAIT)
    await send(listener, v2_payload(listener, connection_info(kernel_id)), from_ip="127.0.0.32")
    await send(listener, eg_v1_payload(listener.legacy_public_key, connection_info(kernel_id)), from_ip="127.0.0.32")
    await expect_still_satisfiable(listener, pending, kernel_id, "127.0.0.31")


async def test_malformed_payloads_are_dropped(listener):
    kernel_id = new_id()
    pending = listener.expect(kernel_id, source_ip="127.0.0.1", timeout=WAIT)
    for junk in (
        b"",
        b"not base64 at all!",
        base64.b64encode(b"[1, 2]"),
        json.dumps({"version": 2, "kernel_id": kernel_id}).encode(),
        json.dumps({"version": 0, "kernel_id": kernel_id, "conn_info": "AAAA"}).encode(),
        v2_payload(listener, connection_info(kernel_id, shell_port="50001")),
        v2_payload(listener, connection_info(kernel_id, transport="ipc")),
        v2_payload(listener, {"kernel_id": kernel_id}),
    ):
        await send(listener, junk)
    await expect_still_satisfiable(listener, pending, kernel_id, "127.0.0.1")


async def test_legacy_payloads_can_be_switched_off(keys):
    async with ResponseListener(host="127.0.0.1", port=0, keys=keys, accept_legacy_payloads=False) as lst:
        assert lst.legacy_public_key is None
        kernel_id = new_id()
        pending = lst.expect(kernel_id, source_ip="127.0.0.1", timeout=WAIT)
        await send(lst, eg_v1_payload(keys.legacy_public_key, connection_info(kernel_id)))
        await expect_still_satisfiable(lst, pending, kernel_id, "127.0.0.1")


def test_version_zero_is_refused(keys):
    with pytest.raises(protocol.PayloadError, match="version 0"):
        keys.open({"version": 0, "kernel_id": "k", "conn_info": "AAAA"})


async def test_logs_never_carry_payload_contents(listener, caplog):
    caplog.set_level(logging.DEBUG)
    kernel_id = new_id()
    pending = listener.expect(kernel_id, source_ip="127.0.0.41", timeout=WAIT)
    info = connection_info(kernel_id)
    payload = v2_payload(listener, info)
    await send(listener, payload, from_ip="127.0.0.42")
    await send(listener, payload, from_ip="127.0.0.41")
    conn = await asyncio.wait_for(pending, WAIT)
    ciphertext = json.loads(payload)["ct"]
    assert "127.0.0.42" in caplog.text and kernel_id in caplog.text
    assert info["key"] not in caplog.text and ciphertext not in caplog.text
    assert info["key"] not in repr(conn)


# --------------------------------------------------------------------------- expectations


async def test_expectation_times_out_and_can_be_registered_again(listener):
    kernel_id = new_id()
    with pytest.raises(ResponseTimeout):
        await asyncio.wait_for(listener.expect(kernel_id, timeout=0.05), WAIT)
    assert not listener.is_expected(kernel_id)
    pending = listener.expect(kernel_id, source_ip="127.0.0.1", timeout=WAIT)
    await expect_still_satisfiable(listener, pending, kernel_id, "127.0.0.1")


async def test_cancel_fails_the_waiter_and_drops_later_payloads(listener):
    kernel_id = new_id()
    pending = listener.expect(kernel_id, timeout=WAIT)
    with pytest.raises(ValueError):
        listener.expect(kernel_id, timeout=WAIT)
    assert listener.cancel(kernel_id)
    with pytest.raises(ResponseCancelled):
        await pending
    await send(listener, v2_payload(listener, connection_info(kernel_id)))
    assert not listener.is_expected(kernel_id) and not listener.cancel(kernel_id)


async def test_cancelling_the_waiting_task_withdraws_the_expectation(listener):
    kernel_id = new_id()
    pending = listener.expect(kernel_id, timeout=WAIT)
    waiter = asyncio.ensure_future(pending)
    await asyncio.sleep(0)  # let the waiter start awaiting
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not listener.is_expected(kernel_id)


async def test_stop_fails_outstanding_expectations(keys):
    lst = ResponseListener(host="127.0.0.1", port=0, keys=keys)
    await lst.start()
    pending = lst.expect(new_id(), timeout=WAIT)
    await lst.stop()
    with pytest.raises(ResponseCancelled):
        await pending


# --------------------------------------------------------------------------- misbehaving peers


async def test_silent_connection_is_closed_and_does_not_block_others(keys):
    async with ResponseListener(host="127.0.0.1", port=0, keys=keys, read_timeout=0.5) as lst:
        silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", lst.port)
        kernel_id = new_id()
        pending = lst.expect(kernel_id, source_ip="127.0.0.1", timeout=WAIT)
        await send(lst, v2_payload(lst, connection_info(kernel_id)))
        await asyncio.wait_for(pending, WAIT)
        assert await asyncio.wait_for(silent_reader.read(), WAIT) == b""  # closed by the listener
        silent_writer.close()


async def test_oversized_payload_is_dropped_and_listener_keeps_working(keys):
    async with ResponseListener(host="127.0.0.1", port=0, keys=keys, max_payload_bytes=4096) as lst:
        kernel_id = new_id()
        pending = lst.expect(kernel_id, source_ip="127.0.0.1", timeout=WAIT)
        reader, writer = await asyncio.open_connection("127.0.0.1", lst.port)
        try:
            writer.write(b"A" * 100_000)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), WAIT) == b""
        except ConnectionResetError:
            pass  # closed while we were still writing: also a drop
        finally:
            writer.close()
        await expect_still_satisfiable(lst, pending, kernel_id, "127.0.0.1")


async def test_connection_flood_from_one_peer_is_refused_without_blocking_other_pods(keys):
    async with ResponseListener(
        host="127.0.0.1", port=0, keys=keys, read_timeout=60.0, max_connections=16, max_connections_per_peer=4
    ) as lst:
        flood = [await asyncio.open_connection("127.0.0.1", lst.port, local_addr=("127.0.0.50", 0)) for _ in range(20)]

        async def closed_by_listener(reader: asyncio.StreamReader) -> None:
            try:
                await reader.read()
            except ConnectionResetError:
                pass

        waits = [asyncio.ensure_future(closed_by_listener(reader)) for reader, _ in flood]
        try:
            kernel_id = new_id()
            pending = lst.expect(kernel_id, source_ip="127.0.0.51", timeout=WAIT)
            await send(lst, v2_payload(lst, connection_info(kernel_id)), from_ip="127.0.0.51")
            await asyncio.wait_for(pending, WAIT)
            closed = 0
            remaining = set(waits)
            while closed < 16:  # all but the per-peer allowance are refused well before the read timeout
                done, remaining = await asyncio.wait(remaining, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
                assert done, "flood connections were not refused"
                closed += len(done)
            assert closed <= 16
        finally:
            for wait in waits:
                wait.cancel()
            for _, writer in flood:
                writer.close()


# --------------------------------------------------------------------------- comm client against an EG launcher


async def test_comm_requests_keep_eg_fields_and_report_unconfirmed_from_eg_launchers():
    received: list[dict] = []

    async def eg_listener(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(json.loads(await reader.read()))  # EG reads to EOF, acts, closes without a word
        writer.close()

    server = await asyncio.start_server(eg_listener, "127.0.0.1", 0)
    try:
        conn = ConnectionInfo.from_payload(
            connection_info(new_id(), ip="127.0.0.1", comm_port=server.sockets[0].getsockname()[1])
        )
        assert await comm.send_signal(conn, 2, timeout=WAIT) is False
        assert await comm.request_shutdown(conn, timeout=WAIT) is False
    finally:
        server.close()
    assert received[0]["signum"] == 2 and "shutdown" not in received[0]
    assert received[1]["shutdown"] == 1 and "signum" not in received[1]


async def test_comm_port_that_refuses_connections_is_an_error():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    try:
        conn = ConnectionInfo.from_payload(connection_info(new_id(), ip="127.0.0.1", comm_port=holder.getsockname()[1]))
        with pytest.raises(comm.CommError):
            await comm.send_signal(conn, 2, timeout=WAIT)
    finally:
        holder.close()


async def test_a_comm_socket_failing_after_connecting_is_a_comm_error(monkeypatch: pytest.MonkeyPatch):
    # A launcher whose side went away between the connection and the request: the socket answers
    # ENOTCONN on shutdown(SHUT_WR).  Shutting the kernel down must go on to delete its pod, which
    # it does on a CommError; any other error would end the shutdown with the pod still there.
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    def not_connected(self: asyncio.StreamWriter) -> None:
        raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    monkeypatch.setattr(asyncio.StreamWriter, "write_eof", not_connected)
    try:
        conn = ConnectionInfo.from_payload(
            connection_info(new_id(), ip="127.0.0.1", comm_port=server.sockets[0].getsockname()[1])
        )
        with pytest.raises(comm.CommError):
            await comm.request_shutdown(conn, timeout=WAIT)
    finally:
        server.close()


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, fastest_loop_factory()], ids=["asyncio", "served"])
def test_a_comm_connection_lost_before_the_request_is_a_comm_error(loop_factory) -> None:
    # The launcher's pod deleted as the gateway connects: the connection is lost before the request
    # is written.  On the loop `kernelgate serve` runs (uvloop) a write then raises RuntimeError, on
    # asyncio's the drain fails; either way shutting the kernel down must go on to delete its pod.
    async def scenario() -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        opened = asyncio.open_connection

        async def lost_at_once(*args, **kwargs):  # type: ignore[no-untyped-def]
            reader, writer = await opened(*args, **kwargs)
            writer.transport.abort()
            await asyncio.sleep(0)  # the loop tells the protocol the connection is lost
            return reader, writer

        try:
            conn = ConnectionInfo.from_payload(
                connection_info(new_id(), ip="127.0.0.1", comm_port=server.sockets[0].getsockname()[1])
            )
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(asyncio, "open_connection", lost_at_once)
                try:
                    answered = await comm.request_shutdown(conn, timeout=WAIT)
                except comm.CommError:
                    return
            assert answered is False
        finally:
            server.close()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(scenario())
