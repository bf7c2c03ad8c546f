"""Signing kernel messages with a kernel's key, and the gateway's own requests to a kernel.

The Jupyter messaging spec signs a message with an HMAC, keyed by the kernel's
connection key, over its four packed parts (header, parent header, metadata,
content), using the hash its ``signature_scheme`` names (``hmac-sha256``).  The
gateway relays what clients and kernels send without decoding it
(:mod:`gateway.kernels.frames`), and sends only one message of its own: the
``kernel_info_request`` of the launch's readiness check and of a websocket client's
nudge.  :class:`MessageSigner` is all that takes: ``jupyter_client``'s ``Session``
(traitlets, packers, a replay history) is kept for the kernel service's own channels
(:class:`~gateway.kernels.channels.KernelChannels`), which decode what they read.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import orjson

from gateway.objects.endpoints import scheme_hash

from .frames import to_zmq

PROTOCOL_VERSION = "5.3"
"""The messaging protocol version the gateway's own requests carry (``jupyter_client``'s)."""

USERNAME = "kernelgate"
"""The ``username`` of the gateway's own requests' headers."""


class MessageSigner:
    """Signs (and makes) kernel messages with one kernel's key; one per kernel pod, shared by its channels.

    Made by :func:`gateway.kernels.channels.gateway_signer` the first time a channel to the pod
    opens.  An empty key signs with an empty signature, as the messaging spec allows.
    """

    def __init__(self, key: bytes, signature_scheme: str) -> None:
        digest = scheme_hash(signature_scheme)
        if digest is None:  # a launcher's report and a record are checked for it (endpoints_problem)
            raise ValueError(f"unsupported signature scheme {signature_scheme!r}")
        self._hmac = hmac.new(key, digestmod=digest) if key else None
        self.session = uuid.uuid4().hex
        """The ``session`` of the requests this signer makes."""

    def sign(self, parts: Sequence[bytes]) -> bytes:
        """The hex signature of the four packed parts ``parts`` (``b""`` without a key)."""
        if self._hmac is None:
            return b""
        mac = self._hmac.copy()
        for part in parts:
            mac.update(part)
        return mac.hexdigest().encode()

    def request(self, msg_type: str, content: dict[str, Any] | None = None) -> tuple[str, list[bytes]]:
        """A new request of the gateway's: ``(its msg_id, the frames a DEALER sends)``."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "username": USERNAME,
            "session": self.session,
            "date": datetime.now(timezone.utc).isoformat(),
            "version": PROTOCOL_VERSION,
        }
        parts = [orjson.dumps(header), b"{}", b"{}", orjson.dumps(content or {})]
        return msg_id, to_zmq(parts, self.sign)
