"""Waiting for a kernel's state: :meth:`Kernel.wait_until` wakes on every kind of change, and only then.

Tests and tools wait for a kernel this way (idle again after an interrupt, activity recorded, a new
pod) instead of polling; each change the kernel takes (a lifecycle state, an iopub status, a client's
activity, activity another replica recorded) must wake the waiters whose condition now holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest

from gateway.kernels.kernel import BUSY, IDLE, RESTARTING, STARTING, Kernel, utcnow
from tests.test_kernels_state import new_kernel


async def _woken_by(kernel: Kernel, predicate: Callable[[Kernel], bool], change: Callable[[], None]) -> None:
    """Start waiting for ``predicate`` (not yet true), make ``change``, and see the wait end."""
    assert not predicate(kernel)
    waiting = asyncio.create_task(kernel.wait_until(predicate, 30))
    await asyncio.sleep(0)  # the waiter is registered before the change
    assert not waiting.done()
    change()
    await asyncio.wait_for(waiting, 5)
    assert kernel._waiters == []


async def test_a_lifecycle_state_wakes_its_waiters() -> None:
    kernel = new_kernel()
    await _woken_by(kernel, lambda k: k.state == IDLE, lambda: kernel.set_state(IDLE))
    await _woken_by(kernel, lambda k: k.state == RESTARTING, lambda: kernel.set_state(RESTARTING))


async def test_an_iopub_status_wakes_its_waiters() -> None:
    kernel = new_kernel()
    kernel.set_state(IDLE)
    await _woken_by(kernel, lambda k: k.execution_state == BUSY, lambda: kernel.observe_status("busy", tracked=True))


async def test_activity_wakes_its_waiters() -> None:
    kernel = new_kernel()
    kernel.last_activity = utcnow() - timedelta(hours=1)
    mark = utcnow() - timedelta(minutes=1)
    await _woken_by(kernel, lambda k: k.last_activity > mark, kernel.touch)


async def test_activity_another_replica_recorded_wakes_its_waiters() -> None:
    kernel = new_kernel()
    kernel.last_activity = utcnow() - timedelta(hours=1)
    later = utcnow()
    await _woken_by(kernel, lambda k: k.last_activity >= later, lambda: kernel.seen_active(later))


async def test_a_change_that_does_not_satisfy_the_condition_keeps_waiting() -> None:
    kernel = new_kernel()
    waiting = asyncio.create_task(kernel.wait_until(lambda k: k.state == BUSY, 30))
    await asyncio.sleep(0)
    kernel.set_state(IDLE)
    await asyncio.sleep(0)
    assert not waiting.done() and kernel.state == IDLE
    kernel.observe_status("busy", tracked=True)
    await asyncio.wait_for(waiting, 5)


async def test_a_condition_already_true_returns_at_once_and_one_never_true_times_out() -> None:
    kernel = new_kernel()
    await asyncio.wait_for(kernel.wait_until(lambda k: k.state == STARTING, 30), 5)
    with pytest.raises(asyncio.TimeoutError):
        await kernel.wait_until(lambda k: k.state == BUSY, 0.01)
    assert kernel._waiters == []
