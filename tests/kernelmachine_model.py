"""The kernel-service state machine's model: which kernels a user was promised, and what each request may answer.

Each kernel the machine asked for has a :class:`Fate`: ``LIVE`` (started, restarted: it runs and
every replica serves it), ``GONE`` (shut down) or ``FAILED`` (its start was refused or failed:
nothing of it may be left), or ``UNSURE`` while an answer under an injected fault leaves both
ends possible (a restart that failed may have given the kernel up); the next settled cluster
decides, and the kernel must then be wholly one or the other.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hypothesis import strategies as st

from gateway.errors import GatewayError
from tests.kernelmachine_cluster import MAX_KERNELS, MAX_PER_USER, Settled

T = TypeVar("T")

USERS = ("alice", "bob")


def pick_any(data: st.DataObject, items: list[T], label: str) -> T | None:
    """One of ``items`` (``None`` if empty), drawn as an index into a fixed range.

    How many kernels live depends on the cluster (a start under faults may fail), so drawing from the
    list itself would make hypothesis see different draws for the same choices; an index never does.
    """
    index = data.draw(st.integers(0, 63), label=label)
    return items[index % len(items)] if items else None


def pick(data: st.DataObject, items: list[T], label: str) -> T:
    """One of ``items``, which are never none (:func:`pick_any`)."""
    chosen = pick_any(data, items, label)
    assert chosen is not None, f"no {label} to choose from"
    return chosen


class Fate(enum.Enum):
    LIVE = "live"
    GONE = "gone"
    FAILED = "failed"
    UNSURE = "unsure"


@dataclass
class ModelKernel:
    id: str
    mode: str
    """``own``, ``user`` (the client's ``KERNEL_NAMESPACE``) or ``shared``."""
    username: str
    fate: Fate
    deaths: int = 0


@dataclass
class Answer:
    """What a request got: its value, or the error it was answered with (every error carries a status)."""

    value: Any = None
    error: GatewayError | None = None

    @property
    def status(self) -> int:
        return 200 if self.error is None else self.error.status


async def answered(request: Awaitable[T], bound: float, what: str) -> Answer:
    """Await a client request: it must end within ``bound`` seconds with a value or a status (no hang, no crash)."""
    try:
        return Answer(value=await asyncio.wait_for(request, bound))
    except GatewayError as error:
        return Answer(error=error)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what}: no answer within {bound}s") from None


@dataclass
class Model:
    """Every kernel the machine asked for, by id."""

    kernels: dict[str, ModelKernel] = field(default_factory=dict)
    faulted: bool = False
    """A fault was injected in this example: an admission whose release failed may outlive its kernel (it is
    dropped by a later admission, see ``gateway.kernels.admissions``)."""
    stale_admissions: dict[str, str] = field(default_factory=dict)
    """Admitted ids (-> user) without a live kernel, as last settled."""

    def ids(self, *fates: Fate) -> list[str]:
        return [k.id for k in self.kernels.values() if k.fate in fates]

    def live(self) -> list[ModelKernel]:
        return [k for k in self.kernels.values() if k.fate is Fate.LIVE]

    def start_outcomes(self, user: str) -> set[int]:
        """The statuses a start for ``user`` may get with no fault: 200 below the limits, 403 at them."""
        live = self.live()
        total, mine = len(live), sum(1 for k in live if k.username == user)
        stale_total = total + len(self.stale_admissions)
        stale_mine = mine + sum(1 for u in self.stale_admissions.values() if u == user)
        full = total >= MAX_KERNELS or mine >= MAX_PER_USER
        maybe_full = stale_total >= MAX_KERNELS or stale_mine >= MAX_PER_USER
        return {403} if full else ({200, 403} if maybe_full else {200})

    def resolve(self, settled: Settled) -> None:
        """Check the settled cluster against the model; an ``UNSURE`` kernel takes the fate the cluster shows."""
        recorded = settled.records
        for kernel in self.kernels.values():
            if kernel.fate is Fate.UNSURE:
                kernel.fate = Fate.LIVE if kernel.id in recorded else Fate.GONE
        live = set(self.ids(Fate.LIVE))
        assert recorded.keys() == live, f"the cluster runs {sorted(recorded)}, the model {sorted(live)}"
        users = [r.username for r in recorded.values()]
        assert len(users) <= MAX_KERNELS and all(users.count(u) <= MAX_PER_USER for u in users), users
        for kernel_id in live:
            assert recorded[kernel_id].username == self.kernels[kernel_id].username
        admitted = settled.admitted
        assert live <= admitted.keys(), f"live kernels not admitted: {live - admitted.keys()}"
        stale = {k: u for k, u in admitted.items() if k not in live}
        assert self.faulted or not stale, f"admissions of kernels that are not live: {stale}"
        self.stale_admissions = stale
