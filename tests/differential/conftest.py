"""The differential test runs on the real control plane of :mod:`e2e.kube` (its session fixture)."""

from e2e.kube.fixture import kube_cluster  # noqa: F401 - the session fixture the differential test runs on
