"""A kernel message as ZeroMQ carries it: finding its parts, checking and making its signature.

A ZMQ kernel message is ``[identities..., b"<IDS|MSG>", signature, header,
parent_header, metadata, content, buffers...]`` (the Jupyter messaging spec).
The gateway relays messages without decoding them: the kernel's iopub feed
(:mod:`gateway.kernels.activity`) and each websocket client's link
(:mod:`gateway.http.podlink`) check what the kernel sends with
:func:`verified`, and sign what clients send with :func:`to_zmq`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence

DELIMITER = b"<IDS|MSG>"

Signer = Callable[[list[bytes]], bytes]
"""Signs the four packed parts (header, parent, metadata, content): a
:class:`~gateway.kernels.signing.MessageSigner`'s ``sign``."""


class FrameError(ValueError):
    """A websocket frame or ZMQ message that is not a kernel message in the expected framing."""


def split_zmq(frames: Sequence[bytes]) -> tuple[bytes, list[bytes]]:
    """``(signature, [header, parent, metadata, content, buffers...])`` of a received ZMQ message."""
    for index, frame in enumerate(frames):
        if frame == DELIMITER:
            rest = list(frames[index + 1:])
            if len(rest) < 5:
                raise FrameError("a kernel message has fewer than five parts after the delimiter")
            return rest[0], rest[1:]
    raise FrameError("a kernel message without the <IDS|MSG> delimiter")


def verified(frames: Sequence[bytes], sign: Signer) -> list[bytes]:
    """The parts of a kernel message after checking its HMAC (``FrameError`` when it does not match)."""
    signature, parts = split_zmq(frames)
    if not hmac.compare_digest(signature, sign(parts[:4])):
        raise FrameError("a kernel message with a bad signature")
    return parts


def to_zmq(parts: Sequence[bytes], sign: Signer) -> list[bytes]:
    """The ZMQ frames sending ``parts`` to the kernel from a DEALER socket: delimiter, signature, parts."""
    return [DELIMITER, sign(list(parts[:4])), *parts]
