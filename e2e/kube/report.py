"""A pytest plugin for ``make test-kube``: how many tests of each suite ran on the real control plane.

Loaded with ``-p e2e.kube.report``.  A test ran on the real control plane when it used the
``kube_cluster`` fixture (as an argument, or through ``request.getfixturevalue``, as the targets of
the contract suite and the scenarios do) or was parametrized with ``kube``.  At the end of the session the plugin
prints, per suite (``tests/contract``, ``scenarios``, or the file under ``tests/``), how many of
those passed, failed or were skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator

import pytest

FIXTURE = "kube_cluster"
TARGET = "kube"
_outcomes: dict[str, str] = {}
"""Test id -> its outcome on the real control plane: ``failed`` once any phase failed."""


def _on_kube(item: pytest.Item) -> bool:
    # The item's fixture request also names the fixtures its fixtures asked for while it ran.
    request = getattr(item, "_request", None)
    if FIXTURE in getattr(item, "fixturenames", ()) or FIXTURE in getattr(request, "fixturenames", ()):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and any(isinstance(v, str) and v == TARGET for v in callspec.params.values())


def _suite(nodeid: str) -> str:
    parts = nodeid.split("::", 1)[0].split("/")
    if parts[0] == "tests":
        return "/".join(parts[:2])  # tests/contract, or tests/test_kubectl_tips.py
    return parts[0]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                                          pytest.TestReport]:
    report = yield
    if _on_kube(item) and _outcomes.get(item.nodeid) != "failed":
        if report.failed:
            _outcomes[item.nodeid] = "failed"
        elif report.skipped:
            _outcomes[item.nodeid] = "skipped"
        elif report.when == "call":
            _outcomes[item.nodeid] = "passed"
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counts: dict[str, Counter[str]] = {}
    for nodeid, outcome in _outcomes.items():
        counts.setdefault(_suite(nodeid), Counter())[outcome] += 1
    terminalreporter.section("ran on the real control plane (e2e/kube)")
    if not counts:
        terminalreporter.write_line("no test ran on the real control plane")
    for suite, found in sorted(counts.items()):
        shown = ", ".join(f"{found[o]} {o}" for o in ("passed", "failed", "skipped") if found[o])
        terminalreporter.write_line(f"{suite}: {shown}")
