"""How hard the property tests and state machines search: the ``ci`` and ``deep`` hypothesis profiles.

``make test`` runs the ``ci`` profile: randomized (each run explores new examples), with budgets that
keep the suite within its time.  ``make test-deep`` runs the ``deep`` profile
(``HYPOTHESIS_PROFILE=deep``): every state machine runs :data:`DEEP_FACTOR` times as many examples,
each of up to twice as many steps, and the example database is kept in ``.hypothesis/`` between
runs, so a failure found once is replayed first the next time.

Tests that set their own budget scale it with :func:`examples` and :func:`steps`; the state
machines count the steps they run and the faults they draw (:func:`count_step`, :func:`count_fault`),
and ``tests/conftest.py`` prints the totals at the end of the run.
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
DEEP_FACTOR = 40
_FACTOR = DEEP_FACTOR if PROFILE == "deep" else 1

settings.register_profile("ci", deadline=None, print_blob=True)
settings.register_profile(
    "deep", deadline=None, print_blob=True, max_examples=1000,
    database=DirectoryBasedExampleDatabase(".hypothesis/examples"),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(PROFILE)

STEPS: Counter[str] = Counter()
"""Steps run by each state machine in this session (by machine name)."""
FAULTS: Counter[str] = Counter()
"""Faults the state machines drew in this session (by kind)."""


def examples(ci: int, *, deep: int | None = None) -> int:
    """The number of examples a test with a ``ci`` budget runs under the active profile.

    ``deep`` replaces ``ci`` times :data:`DEEP_FACTOR` for a machine whose examples are too costly to
    multiply that much (one whose steps start real kernels), so ``make test-deep`` stays within its time.
    """
    if PROFILE == "deep" and deep is not None:
        return deep
    return ci * _FACTOR


def steps(ci: int) -> int:
    """The longest run of a state machine whose ``ci`` budget is ``ci`` steps."""
    return ci * (2 if PROFILE == "deep" else 1)


def count_step(machine: str) -> None:
    """Called by a state machine's rules, once per step."""
    STEPS[machine] += 1


def count_fault(kind: str) -> None:
    """Called by a state machine when it injects a fault."""
    FAULTS[kind] += 1
