"""``make bench``'s floor: starts at once compared in whole rounds, and bare kernels that keep their ports.

A batch that lost a start ends at its last successful one, which flatters that side: the
benchmark runs such a round again and compares only rounds in which every start on both sides
was ready (``bench/starts.py``'s ``run_rounds``), still counting every failure.  The floor's
kernels get ports below the ephemeral range (``floor_ports``), which no outgoing connection takes
between jupyter_client's choice and the kernel's bind.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import bench.starts
from bench.starts import ROUND_ATTEMPTS, floor_ports, round_figures, run_rounds


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


async def test_the_makespans_compared_are_the_whole_rounds_and_every_failure_counts():
    lost = FakeBatch(["lost"], makespan=0.5)  # ended at its last successful start: flattered
    ran = [(lost, FakeBatch(makespan=4.0)), (FakeBatch(makespan=2.0), FakeBatch(makespan=3.0))]

    figures = round_figures(8, ran, ran[1:])

    assert figures["floor_concurrent8_s"] == 2.0 and figures["concurrent8_s"] == 3.0
    assert figures["concurrent8_ratio"] == 1.5
    assert figures["concurrent8_rounds_compared"] == 1
    assert figures["floor_concurrent8_failures"] == 1 and figures["concurrent8_failures"] == 0
    assert round_figures(8, ran[:1], [])["floor_concurrent8_s"] == 0.5  # none whole: the last round run


def test_floor_ports_are_below_the_ephemeral_range_and_distinct_from_call_to_call():
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    first, second = floor_ports(), floor_ports()
    assert len(set(first)) == len(first) == 5 and len(set(second)) == 5
    assert not set(first) & set(second)
    assert all(port < low for port in first + second)


def test_a_floor_port_something_listens_on_is_passed_over():
    floor_ports(1)  # the cursor now stands on the next port it will try
    taken = bench.starts._next_port
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", taken))
        listener.listen()
        ports = floor_ports()
    assert taken not in ports and ports[0] == taken + 1
