"""The scenarios, replayed against the gateways deployed on kind (``tox -e e2e``; see ``conftest.py``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from scenarios.targets import KIND_TARGET_ENV

from .conftest import KindDeployment, artifacts_dir
from .deploy import REPO

SCENARIOS_TIMEOUT = 1800.0
SETUP_TIMEOUT = 2400.0
"""Bound on the fixture's work before the scenarios: images built, cluster created, gateways rolled out."""
SCENARIO_TIMEOUT = 900
"""pytest-timeout of each scenario on kind (the project's default is for simulated clusters)."""


@pytest.mark.timeout(SETUP_TIMEOUT + SCENARIOS_TIMEOUT)
def test_the_scenarios_pass_on_kind(kind_deployment: KindDeployment) -> None:
    report = artifacts_dir() / "scenarios-junit.xml"
    command = [sys.executable, "-m", "pytest", str(REPO / "scenarios"), "--cluster=kind", "-p", "no:cacheprovider",
               "-q", "-rfEs", f"--timeout={SCENARIO_TIMEOUT}", f"--junitxml={report}"]
    try:
        done = subprocess.run(command, cwd=REPO, env={**os.environ, KIND_TARGET_ENV: str(kind_deployment.target_file)},
                              capture_output=True, text=True, timeout=SCENARIOS_TIMEOUT)
    except subprocess.TimeoutExpired:
        path = kind_deployment.save_diagnostics("scenarios")
        pytest.fail(f"the scenarios did not finish on kind within {SCENARIOS_TIMEOUT}s; pods' logs and events: {path}")
    print(done.stdout)
    if done.returncode != 0:
        path = kind_deployment.save_diagnostics("scenarios")
        pytest.fail(f"the scenarios failed on kind (exit {done.returncode}); pods' logs and events: {path}\n"
                    f"{done.stdout[-20000:]}\n{done.stderr[-5000:]}")
