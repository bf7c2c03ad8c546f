"""The gateway signs kernel messages as a Jupyter client does, and refuses kernels it could not sign for.

``jupyter_client``'s ``Session`` stands for the kernel and for any client: what the gateway signs
must check there, and what a ``Session`` signs must check in the gateway.
"""

from __future__ import annotations

import uuid

import pytest
from jupyter_client.session import Session

from gateway.kernels.frames import FrameError, verified
from gateway.kernels.signing import MessageSigner
from gateway.launcher.protocol import PayloadError
from gateway.provisioner.connection import ConnectionInfo

KEY = b"a-kernel-key-of-some-length"


@pytest.mark.parametrize("scheme", ["hmac-sha256", "hmac-sha512", "hmac-md5", "hmac-sha3_256"])
def test_a_request_of_the_gateway_checks_in_a_kernels_session(scheme: str) -> None:
    kernel = Session(key=KEY, signature_scheme=scheme, username="kernel")
    msg_id, frames = MessageSigner(KEY, scheme).request("kernel_info_request")
    _identities, parts = kernel.feed_identities(frames)
    message = kernel.deserialize(parts)  # raises on a bad signature
    assert message["header"]["msg_type"] == "kernel_info_request"
    assert message["header"]["msg_id"] == msg_id
    assert message["content"] == {} and message["parent_header"] == {}


@pytest.mark.parametrize("scheme", ["hmac-sha256", "hmac-sha384", "hmac-blake2b"])
def test_what_a_kernel_signs_checks_in_the_gateway_and_a_forgery_does_not(scheme: str) -> None:
    kernel = Session(key=KEY, signature_scheme=scheme, username="kernel")
    reply = kernel.msg("kernel_info_reply", {"status": "ok"}, parent={"msg_id": "x"})
    frames = [b"identity", *kernel.serialize(reply)]
    signer = MessageSigner(KEY, scheme)
    assert verified(frames, signer.sign)[2:4] == frames[5:7]  # metadata and content, as sent
    forger = Session(key=b"not the kernel's key", signature_scheme=scheme)
    with pytest.raises(FrameError):
        verified([b"identity", *forger.serialize(reply)], signer.sign)


def test_without_a_key_messages_carry_an_empty_signature() -> None:
    signer = MessageSigner(b"", "hmac-sha256")
    _msg_id, frames = signer.request("kernel_info_request")
    assert frames[1] == b""
    kernel = Session(key=b"", username="kernel")
    kernel.deserialize(kernel.feed_identities(frames)[1])


def test_each_request_has_its_own_id() -> None:
    signer = MessageSigner(KEY, "hmac-sha256")
    assert signer.request("kernel_info_request")[0] != signer.request("kernel_info_request")[0]


def payload(scheme: str) -> dict[str, object]:
    return {"kernel_id": str(uuid.uuid4()), "ip": "10.0.0.1", "key": KEY.decode(), "transport": "tcp",
            "signature_scheme": scheme, "shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4,
            "hb_port": 5}


@pytest.mark.parametrize("scheme", ["hmac-nosuchhash", "hmac-shake_128", "sha256", "hmac-", "HMAC-SHA256"])
def test_a_launcher_reporting_a_scheme_the_gateway_cannot_sign_with_is_refused(scheme: str) -> None:
    with pytest.raises(PayloadError, match="signature scheme"):
        ConnectionInfo.from_payload(payload(scheme))
    with pytest.raises(ValueError):
        MessageSigner(KEY, scheme)


def test_a_launcher_reporting_another_hmac_hash_is_taken() -> None:
    assert ConnectionInfo.from_payload(payload("hmac-sha512")).signature_scheme == "hmac-sha512"
