"""The lease holder's duties keep running: one that fails is run again, not lost until the next leader."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gateway.kernels.duties import Duties


class Leading:
    """A replica that holds the duties' Lease from the start (the elector's listener surface only)."""

    identity = "gateway-a"
    leading = True

    def listen(self, listener: Callable[[bool], None]) -> None:
        self.listener = listener


async def test_a_duty_that_fails_runs_again_while_the_replica_leads(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []
    second = asyncio.Event()

    async def collection() -> None:
        runs.append(len(runs) + 1)
        if len(runs) == 1:
            raise RuntimeError("a kernel nobody expected")
        second.set()
        await asyncio.Event().wait()  # runs until cancelled, as every duty does

    duties = Duties(Leading(), {"collection": collection})  # type: ignore[arg-type]
    duties.start()
    await asyncio.wait_for(second.wait(), 10)
    assert runs == [1, 2]
    assert "the collection duty failed; running it again" in caplog.text
    await duties.stop()
    assert not duties.running
