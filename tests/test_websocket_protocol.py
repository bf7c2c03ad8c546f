"""The websocket framings against Jupyter Server's reference encoders, and malformed frames refused cleanly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jupyter_client.session import Session
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)

from gateway.http.wsprotocol import (
    DELIMITER,
    FrameError,
    LegacyCodec,
    V1Codec,
    pack_legacy_buffers,
    pack_v1,
    to_zmq,
    unpack_legacy_buffers,
    unpack_v1,
    verified,
)

channels = st.sampled_from(["shell", "control", "stdin", "iopub"])
blobs = st.binary(max_size=64)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=8)


def packed(value: Any) -> bytes:
    return json.dumps(value).encode()


def parts_of(msg_type: str, content: Any, buffers: list[bytes]) -> list[bytes]:
    header = {"msg_id": "m1", "msg_type": msg_type, "session": "s", "username": "u", "date": "", "version": "5.3"}
    return [packed(header), packed({"msg_id": "p0"}), packed({}), packed(content), *buffers]


@settings(max_examples=80)
@given(channel=channels, parts=st.lists(blobs, min_size=4, max_size=8))
def test_v1_frames_are_jupyter_servers(channel: str, parts: list[bytes]) -> None:
    frame = pack_v1(channel, parts)
    assert frame == serialize_msg_to_ws_v1(parts, channel)
    assert unpack_v1(frame) == (channel, parts)
    assert deserialize_msg_from_ws_v1(frame) == (channel, parts)


@settings(max_examples=80)
@given(json_part=blobs, buffers=st.lists(blobs, max_size=6))
def test_legacy_binary_frames_round_trip(json_part: bytes, buffers: list[bytes]) -> None:
    assert unpack_legacy_buffers(pack_legacy_buffers(json_part, buffers)) == (json_part, buffers)


@settings(max_examples=80)
@given(channel=channels, content=st.dictionaries(st.text(max_size=5), json_values, max_size=4),
       buffers=st.lists(blobs, max_size=3))
def test_legacy_encoding_reads_as_jupyter_server_writes_it(channel: str, content: dict[str, Any],
                                                          buffers: list[bytes]) -> None:
    parts = parts_of("comm_msg", content, buffers)
    frame, binary = LegacyCodec().encode(channel, parts)
    assert binary == bool(buffers)
    msg = deserialize_binary_message(frame) if binary else json.loads(frame)
    assert msg["channel"] == channel
    assert msg["content"] == content
    assert msg["header"]["msg_type"] == msg["msg_type"] == "comm_msg"
    assert msg["msg_id"] == "m1" and msg["parent_header"] == {"msg_id": "p0"}
    assert [bytes(b) for b in msg["buffers"]] == buffers


@settings(max_examples=80)
@given(channel=channels, content=st.dictionaries(st.text(max_size=5), json_values, max_size=4),
       buffers=st.lists(blobs, max_size=3))
def test_legacy_decoding_reads_jupyter_server_frames(channel: str, content: dict[str, Any],
                                                     buffers: list[bytes]) -> None:
    msg = {"header": {"msg_id": "m1", "msg_type": "comm_msg"}, "parent_header": {}, "metadata": {},
           "content": content, "channel": channel, "buffers": buffers}
    frame = serialize_binary_message(msg) if buffers else json.dumps({k: v for k, v in msg.items() if k != "buffers"})
    incoming = LegacyCodec().decode(frame)
    assert (incoming.channel, incoming.msg_type) == (channel, "comm_msg")
    assert json.loads(incoming.parts[3]) == content
    assert incoming.parts[4:] == buffers


def test_a_legacy_message_without_channel_is_for_shell() -> None:
    incoming = LegacyCodec().decode(json.dumps({"header": {"msg_type": "execute_request"}, "content": {}}))
    assert incoming.channel == "shell"


@pytest.mark.parametrize("frame", [
    "not json", "[]", json.dumps({"header": {}}), json.dumps({"header": {"msg_type": 3}}),
    json.dumps({"header": {"msg_type": "x"}, "channel": "heartbeat"}), b"", b"\x00\x00\x00\x05short",
    b"\x00\x00\x00\x01\x00\x00\x00\x09{}",  # offset past the header
    '{"header": {"msg_type": "x"}, "content": {"a": NaN}}', '{"header": {"msg_type": "x"}, "content": ' + "[" * 100000,
])
def test_malformed_legacy_frames_are_frame_errors(frame: str | bytes) -> None:
    with pytest.raises(FrameError):
        LegacyCodec().decode(frame)


@settings(max_examples=100)
@given(frame=st.binary(max_size=200))
def test_any_bytes_decode_or_are_refused(frame: bytes) -> None:
    for codec in (LegacyCodec(), V1Codec()):
        try:
            codec.decode(frame)
        except FrameError:
            pass


def test_v1_needs_binary_frames_and_four_parts() -> None:
    with pytest.raises(FrameError):
        V1Codec().decode("text")
    with pytest.raises(FrameError):
        V1Codec().decode(pack_v1("shell", [b"{}", b"{}"]))
    with pytest.raises(FrameError):
        V1Codec().decode(pack_v1("nowhere", parts_of("kernel_info_request", {}, [])))


def test_signatures_are_made_and_checked_with_the_kernel_key() -> None:
    session = Session(key=b"kernel-key")
    parts = parts_of("execute_request", {"code": "1"}, [b"buffer"])
    frames = to_zmq(parts, session.sign)
    assert frames[0] == DELIMITER
    _, checked = session.feed_identities([b"routing-id", *frames])
    assert session.deserialize(checked)["content"] == {"code": "1"}  # jupyter_client accepts our signature
    assert verified([b"routing-id", *frames], session.sign) == parts
    with pytest.raises(FrameError):
        verified(to_zmq(parts, Session(key=b"other-key").sign), session.sign)
    with pytest.raises(FrameError):
        verified(parts, session.sign)
