"""Writes a controller made and has not yet seen come back through its informer.

After a ReplicaSet's controller creates three pods, its pod cache may still show none for a
moment; counting from that cache would create three more.  So, as client-go's
``ControllerExpectations`` (pkg/controller/controller_utils.go), the controller records what it
expects to see (so many creations, these pods' deletions) and manages the owner's pods again
only once the informer has shown all of it, or after :data:`EXPECTATIONS_TIMEOUT` (a lost
event must not stall the owner for ever).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fakes.controllers.queue import Key

EXPECTATIONS_TIMEOUT = 300.0
"""Seconds after which unmet expectations are given up (client-go's ExpectationsTimeout, 5 minutes)."""


@dataclass
class _Pending:
    creations: int
    deletions: set[str] = field(default_factory=set)  # uids
    since: float = 0.0


class Expectations:
    """Pending creations (counted) and deletions (by pod uid) per owner key."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._pending: dict[Key, _Pending] = {}
        self._clock = clock

    def expect(self, key: Key, *, creations: int = 0, deletions: Iterable[str] = ()) -> None:
        """Record the writes about to be made for ``key`` (replacing what was recorded before)."""
        self._pending[key] = _Pending(creations, set(deletions), self._clock())

    def creation_observed(self, key: Key) -> None:
        """The informer showed a pod of ``key`` appear (or a creation failed and will not appear)."""
        pending = self._pending.get(key)
        if pending is not None and pending.creations > 0:
            pending.creations -= 1

    def deletion_observed(self, key: Key, uid: str) -> None:
        """The informer showed pod ``uid`` of ``key`` terminating or gone (or its deletion was moot)."""
        pending = self._pending.get(key)
        if pending is not None:
            pending.deletions.discard(uid)

    def satisfied(self, key: Key) -> bool:
        """Whether the controller may count ``key``'s pods from the cache again."""
        pending = self._pending.get(key)
        if pending is None:
            return True
        if pending.creations <= 0 and not pending.deletions:
            return True
        return self._clock() - pending.since >= EXPECTATIONS_TIMEOUT

    def forget(self, key: Key) -> None:
        """The owner is gone: drop what it waited for."""
        self._pending.pop(key, None)
