"""The websocket framings against Jupyter Server's reference encoders, and malformed frames refused cleanly.

Also the bridge's states (:mod:`gateway.http.bridgestate`): every move its
transition table allows happens on some event, and no other move is made.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
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

from gateway.http.bridge import KernelBridge
from gateway.http.bridgestate import TRANSITIONS, BridgeState, IllegalTransition, check_transition
from gateway.http.wsprotocol import (
    FrameError,
    LegacyCodec,
    V1Codec,
    pack_legacy_buffers,
    pack_v1,
    unpack_legacy_buffers,
    unpack_v1,
)
from gateway.kernels.frames import DELIMITER, to_zmq, verified
from gateway.kernels.iopub import IopubFeed
from gateway.kernels.kernel import AUTORESTARTING, DEAD, RESTARTING, STARTING, Kernel
from gateway.provisioner.connection import ConnectionInfo
from gateway.provisioner.model import LaunchRequest, Placement, RunningKernel
from gateway.provisioner.spec import KernelSpecInfo

channels = st.sampled_from(["shell", "control", "stdin", "iopub"])
client_channels = st.sampled_from(["shell", "control", "stdin"])
"""The channels a client may send on (iopub only broadcasts from the kernel)."""
blobs = st.binary(max_size=64)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10)
                           | st.floats(allow_nan=False, allow_infinity=False),
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
@given(channel=client_channels, content=st.dictionaries(st.text(max_size=5), json_values, max_size=4),
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


@pytest.mark.parametrize("content", [
    {"big": 2 ** 70, "negative": -(2 ** 64) - 1, "int64": 2 ** 63 - 1, "float": 0.1, "tiny": 5e-324},
    {"digits": "12345678901234567890123", "text": "caf\u00e9 \u2603 \U0001f600", "nested": [[{"a": None}], True]},
])
def test_legacy_decoding_keeps_every_value_exactly(content: dict[str, Any]) -> None:
    """Numbers beyond 64 bits, floats, any text: what the kernel gets is what the client sent."""
    frame = json.dumps({"header": {"msg_id": "m", "msg_type": "comm_msg"}, "content": content, "channel": "shell"})
    assert json.loads(LegacyCodec().decode(frame).parts[3]) == content


def test_a_kernel_header_that_is_not_json_a_client_reads_is_not_relayed() -> None:
    for msg_id in ("NaN", "Infinity"):
        with pytest.raises(FrameError):
            LegacyCodec().encode("iopub", [b'{"msg_id": %s, "msg_type": "status"}' % msg_id.encode(), b"{}", b"{}", b"{}"])


def test_a_legacy_message_without_channel_is_for_shell() -> None:
    incoming = LegacyCodec().decode(json.dumps({"header": {"msg_type": "execute_request"}, "content": {}}))
    assert incoming.channel == "shell"


@pytest.mark.parametrize("frame", [
    "not json", "[]", json.dumps({"header": {}}), json.dumps({"header": {"msg_type": 3}}),
    json.dumps({"header": {"msg_type": ""}, "channel": "shell"}),
    json.dumps({"header": {"msg_type": "execute_request"}, "channel": "iopub"}),
    json.dumps({"header": {"msg_type": "x"}, "channel": "heartbeat"}), b"", b"\x00\x00\x00\x05short",
    b"\x00\x00\x00\x01\x00\x00\x00\x09{}",  # offset past the header
    '{"header": {"msg_type": "x"}, "content": {"a": NaN}}', '{"header": {"msg_type": "x"}, "content": ' + "[" * 100000,
])
def test_malformed_legacy_frames_are_frame_errors(frame: str | bytes) -> None:
    with pytest.raises(FrameError):
        LegacyCodec().decode(frame)


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=6)
CHANNEL_NAMES = st.sampled_from(["shell", "control", "stdin", "iopub", "hb", "nowhere", ""])
VALID_CHANNELS = st.sampled_from(["shell", "control", "stdin"])


@st.composite
def near_frames(draw: st.DrawFn) -> str | bytes:
    """Frames close to valid ones (a legacy JSON or binary frame, or a v1 frame, with fuzzed fields), so that
    decoding often succeeds."""
    header = draw(st.dictionaries(st.sampled_from(["msg_type", "msg_id", "session", "username"]),
                                  st.text(max_size=8) | JSON_VALUES, max_size=4))
    if draw(st.booleans()):
        header["msg_type"] = draw(st.text(min_size=1, max_size=8))
    message = {"header": header, "parent_header": draw(JSON_VALUES), "metadata": draw(JSON_VALUES),
               "content": draw(JSON_VALUES), "channel": draw(VALID_CHANNELS | CHANNEL_NAMES | st.none())}
    if draw(st.booleans()):
        if draw(st.booleans()):
            return json.dumps(message)
        buffers = draw(st.lists(st.binary(max_size=8), min_size=1, max_size=2))
        return pack_legacy_buffers(json.dumps(message).encode(), buffers)
    parts = [json.dumps(message[name]).encode() for name in ("header", "parent_header", "metadata", "content")]
    parts = parts[:draw(st.just(4) | st.integers(min_value=0, max_value=4))]
    parts += draw(st.lists(st.binary(max_size=8), max_size=2))
    return pack_v1(draw(VALID_CHANNELS | CHANNEL_NAMES) or "shell", parts)


@settings(max_examples=200)
@given(frame=st.binary(max_size=200) | near_frames())
def test_any_bytes_decode_or_are_refused(frame: str | bytes) -> None:
    for codec in (LegacyCodec(), V1Codec()):
        try:
            incoming = codec.decode(frame)
        except FrameError:
            continue
        # What decoded is a message for the kernel: a known channel, a typed header, and at least
        # the four JSON parts (header, parent header, metadata, content) ZMQ will carry.
        assert incoming.channel in ("shell", "control", "stdin"), incoming
        assert len(incoming.parts) >= 4
        header = json.loads(incoming.parts[0])
        assert isinstance(header, dict) and header.get("msg_type") == incoming.msg_type
        assert isinstance(incoming.msg_type, str) and incoming.msg_type
        # And it is what Jupyter Server's own decoders read from the same frame.
        assert read_back(codec, incoming) == reference_decode(codec, frame)


def read_back(codec: LegacyCodec | V1Codec, incoming: Any) -> tuple[str, list[Any]]:
    """An ``Incoming`` as :func:`reference_decode` gives it: legacy JSON parts as values, v1 parts as they are."""
    if isinstance(codec, V1Codec):
        return incoming.channel, list(incoming.parts)
    return incoming.channel, [json.loads(part) for part in incoming.parts[:4]] + list(incoming.parts[4:])


def reference_decode(codec: LegacyCodec | V1Codec, frame: str | bytes) -> tuple[str, list[Any]]:
    """``(channel, parts)`` of a frame as Jupyter Server's own decoders (``services/kernels/connection/base.py``)
    read it: v1 parts byte for byte (relayed as they are); legacy header, parent header, metadata and
    content as JSON values (missing ones are empty objects, a missing channel is shell), then the buffers.
    """
    if isinstance(codec, V1Codec):
        assert isinstance(frame, bytes)
        channel, parts = deserialize_msg_from_ws_v1(frame)
        return channel, [bytes(part) for part in parts]
    if isinstance(frame, bytes):
        msg = deserialize_binary_message(frame)
        buffers = [bytes(b) for b in msg.get("buffers") or []]
    else:
        msg, buffers = json.loads(frame), []
    channel = "shell" if msg.get("channel") is None else msg["channel"]
    content = msg.get("content")
    return channel, [msg["header"], msg.get("parent_header") or {}, msg.get("metadata") or {},
                     {} if content is None else content, *buffers]


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


# ---------------------------------------------------------------------- the bridge's states

SPEC = KernelSpecInfo(name="python_kubernetes", language="python", image="elyra/kernel-py:dev",
                      resource_dir=Path("/nonexistent"))
STUCK = 60.0
"""A nudge timeout no test waits out: with no kernel behind the sockets, the connect stays under way."""


class Client:
    """The websocket client as the bridge sees it: the frames written to it, and whether it was closed."""

    def __init__(self) -> None:
        self.frames: list[str | bytes] = []
        self.closed = False

    def write(self, payload: str | bytes, binary: bool) -> None:
        self.frames.append(payload)

    def close(self) -> None:
        self.closed = True

    @property
    def statuses(self) -> list[str]:
        messages = [json.loads(frame) for frame in self.frames]
        return [m["content"]["execution_state"] for m in messages if m["msg_type"] == "status"]


class Service:
    """The kernel service's side of a bridge (the client's session counts its connections: ``test_websocket_resume``)."""

    def record_activity(self, kernel_id: str, msg_type: str) -> None:
        pass


class Moves:
    """Every move of every bridge (``KernelBridge._move`` wrapped), and a way to await a bridge's state."""

    def __init__(self) -> None:
        self.seen: set[tuple[BridgeState, BridgeState]] = set()
        self._waiting: list[tuple[KernelBridge, BridgeState, asyncio.Future[None]]] = []

    def record(self, bridge: KernelBridge, before: BridgeState) -> None:
        self.seen.add((before, bridge.state))
        for waited, state, future in self._waiting:
            if waited is bridge and state is bridge.state and not future.done():
                future.set_result(None)

    async def until(self, bridge: KernelBridge, state: BridgeState) -> None:
        if bridge.state is not state:
            future = asyncio.get_running_loop().create_future()
            self._waiting.append((bridge, state, future))
            await asyncio.wait_for(future, 10)
        assert bridge.state is state


@pytest.fixture
def moves(monkeypatch: pytest.MonkeyPatch) -> Moves:
    seen = Moves()
    move = KernelBridge._move

    def recorded(bridge: KernelBridge, target: BridgeState) -> None:
        before = bridge.state
        move(bridge, target)
        seen.record(bridge, before)

    monkeypatch.setattr(KernelBridge, "_move", recorded)
    return seen


@pytest.fixture
def ports() -> Iterator[list[int]]:
    """Five local ports nothing listens on (held bound meanwhile): the kernel's sockets connect and never answer."""
    held = [socket.socket() for _ in range(5)]
    for sock in held:
        sock.bind(("127.0.0.1", 0))
    yield [sock.getsockname()[1] for sock in held]
    for sock in held:
        sock.close()


def pod(ports: list[int], transport: str = "tcp") -> RunningKernel:
    shell, iopub, stdin, control, hb = ports
    connection = ConnectionInfo(kernel_id="k", ip="127.0.0.1", shell_port=shell, iopub_port=iopub,
                                stdin_port=stdin, control_port=control, hb_port=hb, key="secret", transport=transport)
    return RunningKernel(placement=Placement("ns", "sa", owns_namespace=False, pod_name="kernel-k"),
                         connection=connection, pod_ip="127.0.0.1", pod_uid=str(uuid.uuid4()))


def bridge_to(kernel: Kernel, *, nudge_timeout: float = 0.0) -> tuple[KernelBridge, Client, Service]:
    client, service = Client(), Service()
    bridge = KernelBridge(service, kernel, LegacyCodec(), client.write, client.close,  # type: ignore[arg-type]
                          nudge_timeout=nudge_timeout)
    return bridge, client, service


def starting_kernel() -> Kernel:
    return Kernel(LaunchRequest(kernel_id=str(uuid.uuid4()), username="alice", spec=SPEC))


def launched(kernel: Kernel, running: RunningKernel) -> None:
    """A launch's end as the kernel's pods make it: the pod's iopub feed (unread here: nothing publishes), then idle."""
    kernel.iopub = IopubFeed(kernel, running.connection)
    kernel.launched(running)


def running_kernel(ports: list[int]) -> Kernel:
    kernel = starting_kernel()
    launched(kernel, pod(ports))
    return kernel


async def relaying_through_restarts_until_dead(moves: Moves, ports: list[int]) -> None:
    kernel = running_kernel(ports)
    bridge, client, _ = bridge_to(kernel)
    await bridge.open()
    assert bridge.state is BridgeState.RELAYING
    kernel.set_state(AUTORESTARTING)
    kernel.stopped()
    kernel.set_state(STARTING)
    kernel.set_state(AUTORESTARTING)  # the relaunch failed
    kernel.set_state(STARTING)
    assert bridge.state is BridgeState.RESTARTING
    launched(kernel, pod(ports))
    await moves.until(bridge, BridgeState.RELAYING)
    assert client.statuses == ["restarting", "starting", "restarting", "starting", "idle"]
    kernel.set_state(DEAD)
    assert bridge.state is BridgeState.CLOSING and client.closed
    assert client.statuses[-1] == "dead"
    bridge.close()
    assert bridge.state is BridgeState.CLOSED


async def waiting_for_a_starting_kernel(moves: Moves, ports: list[int]) -> None:
    kernel = starting_kernel()
    bridge, client, _ = bridge_to(kernel)
    await bridge.open()
    assert bridge.state is BridgeState.WAITING
    await bridge.receive(json.dumps({"header": {"msg_type": "kernel_info_request", "msg_id": "m"}, "content": {}}))
    launched(kernel, pod(ports))
    await moves.until(bridge, BridgeState.RELAYING)
    assert client.statuses == []  # the client heard of no restart, so it hears of no end of one
    bridge.close()
    assert bridge.state is BridgeState.CLOSED


async def waiting_then_restarting_then_gone(moves: Moves, ports: list[int]) -> None:
    kernel = starting_kernel()
    bridge, client, _ = bridge_to(kernel)
    await bridge.open()
    kernel.set_state(RESTARTING)
    assert bridge.state is BridgeState.RESTARTING and client.statuses == []  # the client asked for this restart
    bridge.close()


async def waiting_until_dead(moves: Moves, ports: list[int]) -> None:
    kernel = starting_kernel()
    bridge, client, _ = bridge_to(kernel)
    await bridge.open()
    kernel.set_state(DEAD)
    assert bridge.state is BridgeState.CLOSING and client.closed
    bridge.close()


async def waiting_then_gone(moves: Moves, ports: list[int]) -> None:
    bridge, _, _ = bridge_to(starting_kernel())
    await bridge.open()
    bridge.close()
    assert bridge.state is BridgeState.CLOSED


async def gone_before_open(moves: Moves, ports: list[int]) -> None:
    bridge, _, _ = bridge_to(starting_kernel())
    bridge.close()
    assert bridge.state is BridgeState.CLOSED


async def connecting_when(event: Callable[[Kernel, KernelBridge], None], moves: Moves, ports: list[int]) -> KernelBridge:
    """Open a bridge to a kernel that never answers its nudges, then ``event`` while it connects."""
    kernel = running_kernel(ports)
    bridge, _, _ = bridge_to(kernel, nudge_timeout=STUCK)
    opening = asyncio.ensure_future(bridge.open())
    await moves.until(bridge, BridgeState.CONNECTING)
    event(kernel, bridge)
    await asyncio.wait_for(opening, 10)  # the connect was cancelled: open() returns
    return bridge


async def connecting_when_restarting(moves: Moves, ports: list[int]) -> None:
    bridge = await connecting_when(lambda kernel, _: kernel.set_state(RESTARTING), moves, ports)
    assert bridge.state is BridgeState.RESTARTING
    bridge.kernel.set_state(DEAD)
    assert bridge.state is BridgeState.CLOSING
    bridge.close()


async def connecting_when_dead(moves: Moves, ports: list[int]) -> None:
    bridge = await connecting_when(lambda kernel, _: kernel.set_state(DEAD), moves, ports)
    assert bridge.state is BridgeState.CLOSING
    bridge.close()


async def connecting_when_gone(moves: Moves, ports: list[int]) -> None:
    bridge = await connecting_when(lambda _, bridge: bridge.close(), moves, ports)
    assert bridge.state is BridgeState.CLOSED


async def connecting_to_a_pod_out_of_reach(moves: Moves, ports: list[int]) -> None:
    kernel = starting_kernel()
    bridge, client, _ = bridge_to(kernel)
    await bridge.open()
    kernel.launched(pod(ports, transport="nowhere"))  # no socket to it can be made: the gateway has no feed of it
    await moves.until(bridge, BridgeState.CLOSING)
    assert client.closed
    bridge.close()


SCENARIOS: list[Callable[[Moves, list[int]], Awaitable[None]]] = [
    relaying_through_restarts_until_dead, waiting_for_a_starting_kernel, waiting_then_restarting_then_gone,
    waiting_until_dead, waiting_then_gone, gone_before_open, connecting_when_restarting, connecting_when_dead,
    connecting_when_gone, connecting_to_a_pod_out_of_reach,
]


async def test_every_transition_the_table_allows_happens_on_some_event(moves: Moves, ports: list[int]) -> None:
    for scenario in SCENARIOS:
        await scenario(moves, ports)
    allowed = {(state, target) for state, targets in TRANSITIONS.items() for target in targets}
    assert moves.seen == allowed


def test_a_move_the_table_does_not_allow_is_refused() -> None:
    for state in BridgeState:
        for target in BridgeState:
            if target not in TRANSITIONS[state]:
                with pytest.raises(IllegalTransition) as refused:
                    check_transition(state, target)
                # the log line a refused move leaves names both ends
                assert str(refused.value) == f"a websocket bridge cannot go from {state.value} to {target.value}"
                assert (refused.value.current, refused.value.target) == (state, target)
    bridge, _, _ = bridge_to(starting_kernel())
    with pytest.raises(IllegalTransition):
        bridge._move(BridgeState.RELAYING)
    assert bridge.state is BridgeState.NEW
