"""``kube_cluster``: the real control plane for one test session.

Test suites that run on ``--cluster=kube`` import this fixture into their
conftest.  It is started once per session and stopped, with every process and
file removed, when the session ends.  It does not build the binary: a cold
build takes far longer than a test may (pytest-timeout), so ``make test-kube``
runs ``python -m e2e.kube build`` first.  Without a built binary the tests that
ask for it are skipped with that advice, or fail where
``KERNELGATE_REQUIRE_KUBE`` is set (as ``make test-kube`` sets it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from e2e.kube import build
from e2e.kube.launcher import ControlPlane

REQUIRE_ENV = "KERNELGATE_REQUIRE_KUBE"


def require_built() -> None:
    """Skip the calling test (fail it under ``KERNELGATE_REQUIRE_KUBE``) when the binary is not built.

    Called by :func:`kube_cluster` and by tests that start a control plane of their own.
    """
    if not build.binary_path().exists():
        why = f"the control plane is not built ({build.binary_path()}): run python -m e2e.kube build"
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[ControlPlane]:
    require_built()
    plane = ControlPlane()
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()
