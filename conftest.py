"""What every test suite of the repository shares: the ``--cluster`` option.

``--cluster`` (comma-separated) names the clusters the contract suite
(tests/contract/conftest.py), the scenarios (scenarios/conftest.py), the kubectl
tips and the least-privilege tests (``tests/deployedharness.py`` ``places``) run
on; each suite checks the names and runs on those it has a target for.  It is
registered here, at the root, so that any selection of files takes it.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cluster", default="memory,apiserver", dest="clusters",
        help="where the contract suite and the scenarios run, comma-separated: memory (embedded in-memory "
        "cluster), apiserver (the simulated API server, real adapter, manifests' RBAC), kube (contract suite, scenarios, "
        "kubectl tips, least privilege: a real control plane built from Kubernetes' Go modules, e2e/kube), replicas (scenarios: two kernelgate serve "
        "processes on the simulated API server behind a round-robin front), kind (scenarios: deployed by e2e/; "
        "default: %(default)s)")
