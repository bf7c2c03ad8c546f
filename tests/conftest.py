"""What every test under ``tests/`` is held to: an async test ends every task it started.

The gateway owns its background tasks and ends them when it stops; a task
still running once a test and its fixtures are done is one the code under
test (or the test) forgot.  A test that must leave tasks behind says why with
``@pytest.mark.leaves_tasks("why")``.

Importing :mod:`tests.depth` loads the hypothesis profile (``ci``, or ``deep`` for
``make test-deep``) before any test is collected; the end of the run reports how many
steps the state machines ran and which faults they drew.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest
from pytest_asyncio import is_async_test

from tests import depth
from tests.loop_tasks import GRACE, describe, still_running_after

_CALL_PASSED = pytest.StashKey[bool]()
"""Set on an item once its call phase is reported: whether the test body passed."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Called by pytest for each phase's report: records whether the test body passed, for the check below."""
    report = yield
    if report.when == "call":
        item.stash[_CALL_PASSED] = report.passed
    return report


def _loop_scope(item: pytest.Item) -> str:
    """The scope of the event loop pytest-asyncio runs ``item`` in (as its ``asyncio`` marker or the ini sets it)."""
    marker = item.get_closest_marker("asyncio")
    scope = marker.kwargs.get("loop_scope") if marker is not None else None
    return scope or item.config.getini("asyncio_default_test_loop_scope")


@pytest.fixture(autouse=True)
def no_task_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail an async test that leaves tasks of its event loop unfinished, naming them.

    Checks tests run on a function-scoped loop (a longer-lived loop keeps its
    fixtures' tasks between tests).  Being autouse, this fixture is set up
    before the test's other function-scoped fixtures, so it is torn down after
    them: the check sees what remains once they are all finalized.  It asks
    for pytest-asyncio's loop runner itself (``_function_scoped_runner`` in
    pytest-asyncio 1.x) so that the loop is closed only after the check.
    Leftover tasks get :data:`~tests.loop_tasks.GRACE` seconds to end; a test
    whose body failed is not checked (its failure is the news).
    """
    item = request.node
    exempt = item.get_closest_marker("leaves_tasks")
    if exempt is not None and not exempt.args:
        pytest.fail("@pytest.mark.leaves_tasks needs the reason the test leaves tasks running", pytrace=False)
    if exempt is not None or not is_async_test(item) or _loop_scope(item) != "function":
        yield
        return
    runner = request.getfixturevalue("_function_scoped_runner")
    yield
    if not item.stash.get(_CALL_PASSED, False):
        return
    left = still_running_after(runner.get_loop())
    if left:
        pytest.fail(f"tasks left running {GRACE}s after the test and its fixtures ended:\n{describe(left)}",
                    pytrace=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Called by pytest at the end of the run: the state machines' steps and faults, under the active profile."""
    if not depth.STEPS:
        return
    terminalreporter.write_sep("-", f"hypothesis profile {depth.PROFILE}: state machine steps and faults")
    for machine, count in sorted(depth.STEPS.items()):
        terminalreporter.write_line(f"{machine}: {count} steps")
    terminalreporter.write_line(f"all machines: {sum(depth.STEPS.values())} steps")
    for kind, count in sorted(depth.FAULTS.items()):
        terminalreporter.write_line(f"fault {kind}: drawn {count} times")
