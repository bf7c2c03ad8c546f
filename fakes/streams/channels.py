"""The websocket channel protocols of Kubernetes streaming (``*.channel.k8s.io``).

Each binary message starts with one byte naming its channel, then that channel's data
(``k8s.io/apimachinery/pkg/util/httpstream/wsstream/conn.go``); the ``base64`` variants send
text messages whose first character is the channel digit and whose rest is base64.  For exec
and attach the channels are stdin 0, stdout 1, stderr 2, error 3 and resize 4
(``k8s.io/apimachinery/pkg/util/remotecommand/constants.go``); ``v5.channel.k8s.io`` adds the
close signal, a message ``[255, n]`` saying the sender has finished writing channel ``n``
(``client-go/tools/remotecommand/websocket.go`` ``stream.Close``).  The version says what the
error channel carries: plain text up to ``v3``, a ``Status`` object from ``v4`` on; resize
exists from ``v3``.

:func:`negotiate` picks the protocol the way ``wsstream``'s handshake does: the first one the
client offers that the server supports; no offer at all means the unversioned protocol.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255
"""The v5 close signal's channel byte."""


@dataclass(frozen=True)
class ChannelProtocol:
    """One negotiated subprotocol: its name, its remote-command version (1-5), its encoding."""

    name: str
    version: int
    base64: bool

    @property
    def status_errors(self) -> bool:
        """Whether the error channel carries a ``Status`` (v4 on) rather than text."""
        return self.version >= 4

    @property
    def resizes(self) -> bool:
        return self.version >= 3

    @property
    def closes(self) -> bool:
        """Whether the close signal is understood (v5)."""
        return self.version >= 5

    def encode(self, channel: int, data: bytes) -> bytes | str:
        if self.base64:
            return chr(ord("0") + channel) + base64.b64encode(data).decode()
        return bytes([channel]) + data

    def decode(self, message: bytes | str) -> tuple[int, bytes] | None:
        """``(channel, data)`` of a client message; ``None`` for an empty or undecodable one."""
        if not message:
            return None
        if isinstance(message, str):
            if not self.base64:
                return None
            try:
                return ord(message[0]) - ord("0"), base64.b64decode(message[1:])
            except ValueError:
                return None
        if self.base64:
            return self.decode(message.decode("latin-1"))
        return message[0], bytes(message[1:])


def _protocols() -> dict[str, ChannelProtocol]:
    found = {"": ChannelProtocol("", 1, False), "channel.k8s.io": ChannelProtocol("channel.k8s.io", 1, False),
             "base64.channel.k8s.io": ChannelProtocol("base64.channel.k8s.io", 1, True)}
    for version in range(2, 6):
        for encoded in (False, True):
            name = f"v{version}.{'base64.' if encoded else ''}channel.k8s.io"
            found[name] = ChannelProtocol(name, version, encoded)
    return found


REMOTE_COMMAND = _protocols()
"""Exec and attach: every version and encoding the kubelet's websocket server and the API server's
stream translator accept between them."""
PORT_FORWARD = {name: REMOTE_COMMAND[name] for name in ("", "v4.channel.k8s.io", "v4.base64.channel.k8s.io")}
"""Port-forward over channels (``pkg/kubelet/cri/streaming/portforward/websocket.go``)."""


def offered(header: str | None) -> list[str]:
    """The subprotocols of a ``Sec-WebSocket-Protocol`` header, in the client's order."""
    return [p.strip() for p in (header or "").split(",") if p.strip()]


def negotiate(offers: list[str], supported: dict[str, ChannelProtocol]) -> ChannelProtocol | None:
    """The first of ``offers`` in ``supported`` (the unversioned protocol when nothing is offered)."""
    for name in offers or [""]:
        if name in supported:
            return supported[name]
    return None
