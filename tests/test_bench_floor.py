"""``make bench``'s starts at once compare whole rounds.

A batch that lost a start ends at its last successful one, which flatters that side: the
benchmark runs such a round again and compares only rounds in which every start on both sides
was ready (``bench/starts.py``'s ``run_rounds``), still counting every failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.starts import ROUND_ATTEMPTS, run_rounds


@dataclass
class FakeBatch:
    failures: list[str] = field(default_factory=list)
    makespan: float = 1.0


def rounds_of(outcomes: list[tuple[bool, bool]]):
    """A round function whose successive rounds lose a floor / a gateway start as ``outcomes`` say."""
    played = iter(outcomes)

    async def one_round() -> tuple[FakeBatch, FakeBatch]:
        floor_lost, ours_lost = next(played)
        return FakeBatch(["lost"] if floor_lost else []), FakeBatch(["lost"] if ours_lost else [])

    return one_round


async def test_a_round_that_lost_a_start_on_either_side_is_run_again():
    ran, whole = await run_rounds(2, rounds_of([(True, False), (False, False), (False, True), (False, False)]))

    assert len(ran) == 4
    assert len(whole) == 2
    assert all(not floor.failures and not ours.failures for floor, ours in whole)
    assert sum(len(floor.failures) + len(ours.failures) for floor, ours in ran) == 2


async def test_a_round_that_never_comes_whole_is_tried_a_bounded_number_of_times():
    ran, whole = await run_rounds(1, rounds_of([(True, True)] * (ROUND_ATTEMPTS + 5)))

    assert len(ran) == ROUND_ATTEMPTS
    assert whole == []
