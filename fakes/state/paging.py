"""A list's pages: the ``continue`` token of a ``limit``-ed LIST, as the real API server writes and reads it.

The real server's token (k8s.io/apiserver ``pkg/storage/continue.go``) is base64url, unpadded, of
``{"v": "meta.k8s.io/v1", "rv": <revision>, "start": <key after the page's last>}``; clients treat
it as opaque.  It answers a token it cannot read with 400 (``invalid continue token``) and one
whose revision etcd has compacted with 410 ``Expired`` (``pkg/storage/etcd3/store.go``).  Here the
revision is the store's version and "compacted" is older than the watch window keeps
(:meth:`fakes.state.watching.EventLog.oldest_available`), as a watch from it would be.

One difference stands: a real server reads every page at the first page's revision (an etcd
snapshot); this store keeps no history, so a later page shows the objects after the token's key
as they are now, while it still says the first page's ``resourceVersion``.  A client that lists
and then watches from that version (an informer) sees whatever changed meanwhile again, as events.
"""

from __future__ import annotations

import base64
import json

from gateway.cluster.interface import BadRequest, Gone

TOKEN_VERSION = "meta.k8s.io/v1"

EXPIRED = ("The provided continue parameter is too old to display a consistent list result. You can start a new "
           "list without the continue parameter.")


def token(rv: int, last: tuple[str, str]) -> str:
    """The token of the page after the one that ended with the object keyed ``last`` (namespace, name)."""
    namespace, name = last
    body = {"v": TOKEN_VERSION, "rv": rv, "start": f"{namespace}/{name}"}
    return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")


def read_token(text: str, oldest: int) -> tuple[int, tuple[str, str]]:
    """The revision and the last key of the page before; 400 for a token that does not read, 410 for one
    older than ``oldest`` (the oldest version the store can still watch from)."""
    try:
        body = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        rv, start = body["rv"], body["start"]
        if body.get("v") != TOKEN_VERSION or not isinstance(rv, int) or rv < 0 or not isinstance(start, str):
            raise ValueError(body)
        namespace, slash, name = start.partition("/")
        if not slash:
            raise ValueError(start)
    except (ValueError, KeyError, TypeError) as error:  # binascii.Error and JSONDecodeError are ValueErrors
        raise BadRequest(f"invalid continue token: {error}") from None
    if rv < oldest:
        raise Gone(EXPIRED)
    return rv, (namespace, name)
