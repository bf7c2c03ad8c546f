"""The launcher's pieces in-process: comm-request signatures, payload sealing, options, port choice."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
import time
import uuid

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.launcher import protocol, purecrypto
from gateway.launcher.options import UsageError, parse_options, parse_port_range
from gateway.launcher.ports import reserve_ports, share_with_kernel
from gateway.provisioner.crypto import GatewayKeys

KERNEL = "0b6a3c8e-3f0e-4d43-9d1e-6a3f2f6c1a10"
KEY = "connection-key"


# --------------------------------------------------------------------------- comm requests


def test_signed_request_verifies_and_says_what_to_do():
    now = time.time()
    request = protocol.sign_comm_request(kernel_id=KERNEL, key=KEY, now=now, signum=2)
    verified = protocol.verify_comm_request(request, kernel_id=KERNEL, key=KEY, now=now + 1)
    assert (verified.signum, verified.shutdown) == (2, False)
    shutdown = protocol.sign_comm_request(kernel_id=KERNEL, key=KEY, now=now, shutdown=True)
    assert protocol.verify_comm_request(shutdown, kernel_id=KERNEL, key=KEY, now=now).shutdown is True
    assert shutdown["shutdown"] == 1  # EG's launchers read this field as it is


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.pop("sig"),
        lambda r: r.update(sig="0" * 64),
        lambda r: r.update(signum=9),
        lambda r: r.update(shutdown=1),
        lambda r: r.update(ts=r["ts"] + 1),
        lambda r: r.update(nonce="other"),
        lambda r: r.update(signum=True),
        lambda r: r.update(signum=-1),
    ],
)
def test_any_change_to_a_signed_request_is_refused(change):
    now = time.time()
    request = protocol.sign_comm_request(kernel_id=KERNEL, key=KEY, now=now, signum=2)
    change(request)
    with pytest.raises(protocol.CommRequestRejected):
        protocol.verify_comm_request(request, kernel_id=KERNEL, key=KEY, now=now)


def test_request_for_another_kernel_or_key_or_time_is_refused():
    now = time.time()
    request = protocol.sign_comm_request(kernel_id=KERNEL, key=KEY, now=now, signum=2)
    for kernel_id, key, at in ((str(uuid.uuid4()), KEY, now), (KERNEL, "other", now), (KERNEL, KEY, now + 3600)):
        with pytest.raises(protocol.CommRequestRejected):
            protocol.verify_comm_request(request, kernel_id=kernel_id, key=key, now=at)


# --------------------------------------------------------------------------- payloads


def raw_public(key: x25519.X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@settings(max_examples=50, deadline=None)
@given(kernel_id=st.text(min_size=1, max_size=80), key=st.text(max_size=200))
def test_v2_payload_round_trips_for_any_kernel_id(kernel_id, key):
    gateway = x25519.X25519PrivateKey.generate()
    info = {"kernel_id": kernel_id, "key": key, "shell_port": 1}
    envelope = protocol.parse_envelope(protocol.seal_v2(info, kernel_id, raw_public(gateway)))
    assert protocol.open_v2(envelope, gateway) == info


def test_v2_payload_for_another_gateway_does_not_open():
    ours, theirs = x25519.X25519PrivateKey.generate(), x25519.X25519PrivateKey.generate()
    envelope = protocol.parse_envelope(protocol.seal_v2({"kernel_id": KERNEL}, KERNEL, raw_public(theirs)))
    with pytest.raises(protocol.PayloadError, match="authentication"):
        protocol.open_v2(envelope, ours)


def test_response_key_formats():
    keys = GatewayKeys(legacy=True)
    assert protocol.ResponseKey.parse(keys.public_key).x25519 is not None
    assert protocol.ResponseKey.parse(keys.legacy_public_key).rsa is not None
    for bad in ("", "not base64!", "bm90IGEga2V5"):
        with pytest.raises(protocol.PayloadError):
            protocol.ResponseKey.parse(bad)


def test_x25519_key_is_preferred_wherever_it_was_given():
    keys = GatewayKeys(legacy=True)
    assert protocol.ResponseKey.choose([keys.legacy_public_key, keys.public_key]).x25519 is not None
    assert protocol.ResponseKey.choose(["garbage", keys.legacy_public_key]).rsa is not None
    with pytest.raises(protocol.PayloadError):
        protocol.ResponseKey.choose(["garbage", ""])


def test_legacy_payload_from_our_launcher_opens_with_the_gateway_rsa_key():
    keys = GatewayKeys(legacy=True)
    rsa_key = protocol.ResponseKey.parse(keys.legacy_public_key).rsa
    opened = keys.open(protocol.parse_envelope(protocol.seal_v1({"kernel_id": KERNEL, "key": "k"}, rsa_key)))
    assert (opened.version, opened.kernel_id, opened.info["key"]) == (1, KERNEL, "k")


def test_launcher_crypto_matches_the_rfc_vectors():
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob_public = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    assert purecrypto.x25519(alice, (9).to_bytes(32, "little")).hex() == (
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )  # RFC 7748 section 6.1
    assert purecrypto.x25519_exchange(alice, bob_public).hex() == (
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    )
    with pytest.raises(ValueError):
        purecrypto.x25519_exchange(alice, bytes(32))  # a low-order point
    sealed = purecrypto.chacha20_poly1305_encrypt(
        bytes(range(0x80, 0xA0)),
        bytes.fromhex("070000004041424344454647"),
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
        b"sunscreen would be it.",
        bytes.fromhex("50515253c0c1c2c3c4c5c6c7"),
    )
    assert sealed[-16:].hex() == "1ae10b594f09e26a7e902ecbd0600691"  # RFC 8439 section 2.8.2
    assert sealed[:8].hex() == "d31a8d34648e60db"


@settings(max_examples=50, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), nonce=st.binary(min_size=12, max_size=12),
       data=st.binary(max_size=300), aad=st.binary(max_size=40), secret=st.binary(min_size=32, max_size=32))
def test_launcher_crypto_agrees_with_cryptography(key, nonce, data, aad, secret):
    assert purecrypto.chacha20_poly1305_encrypt(key, nonce, data, aad) == ChaCha20Poly1305(key).encrypt(nonce, data, aad)
    private = x25519.X25519PrivateKey.from_private_bytes(secret)
    assert purecrypto.x25519(secret, (9).to_bytes(32, "little")) == raw_public(private)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=aad)
    assert purecrypto.hkdf_sha256(secret, info=aad) == hkdf.derive(secret)


# --------------------------------------------------------------------------- options


def test_command_line_wins_over_environment():
    env = {
        "KERNEL_ID": "from-env",
        "RESPONSE_ADDRESS": "10.0.0.1:8877",
        "EG_RESPONSE_ADDRESS": "10.0.0.2:8877",
        "KERNEL_RESPONSE_KEY": "ours",
        "PUBLIC_KEY": "eg",
        "KERNEL_POD_IP": "10.1.2.3",
        "PORT_RANGE": "40000..40999",
    }
    options = parse_options([], env)
    assert (options.kernel_id, options.response_host, options.response_port) == ("from-env", "10.0.0.2", 8877)
    assert (options.public_keys, options.bind_ip, options.port_range) == (("ours", "eg"), "10.1.2.3", (40000, 40999))
    options = parse_options(["--kernel-id", "cli", "--ip", "127.0.0.9", "--port-range", "0..0"], env)
    assert (options.kernel_id, options.bind_ip, options.port_range) == ("cli", "127.0.0.9", None)
    assert "ours" not in repr(options)
    assert (options.response_timeout, options.spark_context_initialization_mode) == (60.0, "none")
    options = parse_options([], dict(env, KERNEL_LAUNCH_TIMEOUT="25", SPARK_CONTEXT_INITIALIZATION_MODE="Lazy"))
    assert (options.response_timeout, options.spark_context_initialization_mode) == (25.0, "lazy")


@pytest.mark.parametrize("text", ["40000", "a..b", "10..12", "70000..70010", "500..400"])
def test_bad_port_ranges_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_port_range(text)


@pytest.mark.parametrize("address", ["nowhere", "host:", ":8877", "host:99999", "host:port"])
def test_bad_response_addresses_are_usage_errors(address):
    with pytest.raises(UsageError):
        parse_options(["--kernel-id", "k", "--public-key", "x", "--response-address", address], {})


# --------------------------------------------------------------------------- ports


def test_reserved_ports_are_distinct_and_in_range():
    sockets = reserve_ports("127.0.0.1", 6, (42000, 42999))
    try:
        ports = [s.getsockname()[1] for s in sockets]
        assert len(set(ports)) == 6 and all(42000 <= p <= 42999 for p in ports)
    finally:
        for sock in sockets:
            sock.close()


def test_full_port_range_is_an_error():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    try:
        with pytest.raises(OSError, match="no free port"):
            reserve_ports("127.0.0.1", 2, (port, port))
    finally:
        holder.close()


def test_ports_shared_with_the_kernel_stay_taken_for_everyone_else():
    import zmq

    address = "127.1.255.61"  # a pod address of its own
    sockets = reserve_ports(address, 5, None)
    share_with_kernel(sockets)
    context = zmq.Context()
    listeners = []
    try:
        for sock in sockets:
            port = sock.getsockname()[1]
            intruder = socket.socket()  # e.g. the launcher's own connection to the gateway
            with pytest.raises(OSError):
                intruder.bind((address, port))
            intruder.close()
            listener = context.socket(zmq.ROUTER)  # as the kernel binds it, while the launcher still holds it
            listeners.append(listener)
            listener.bind(f"tcp://{address}:{port}")
    finally:
        for listener in listeners:
            listener.close(linger=0)
        context.term()
        for sock in sockets:
            sock.close()


# --------------------------------------------------------------------------- what the kernel image needs


def test_launcher_imports_neither_tornado_nor_the_kubernetes_client():
    code = (
        "import sys\n"
        "import gateway.launcher.main, gateway.launcher.comm, gateway.launcher.kernel\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tornado', 'kubernetes', 'gateway')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    loaded = ast.literal_eval(out)
    assert "gateway.launcher.main" in loaded
    assert not [m for m in loaded if not m.startswith("gateway.launcher") and m != "gateway"]


def test_a_python_kernel_pod_loads_neither_asyncio_nor_cryptography_before_the_kernel():
    """Both would cost every kernel start-up time, and ``cryptography`` the kernel's memory for its whole life."""
    gateway_key = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08="  # RFC 7748's Bob, base64
    legacy_key = GatewayKeys(legacy=True).legacy_public_key  # a pod gets both keys
    code = (
        "import sys\n"
        f"legacy_key = {legacy_key!r}\n"
        "from gateway.launcher import main, inprocess, protocol\n"
        f"key = protocol.ResponseKey.choose([legacy_key, {gateway_key!r}])\n"
        "protocol.seal_v2({'kernel_id': 'k'}, 'k', key.x25519)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('asyncio', 'cryptography')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert ast.literal_eval(out) == []
