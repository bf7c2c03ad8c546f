"""A failed launch's clean-up outlasts an API server that briefly refuses deletions.

When a launch fails, the provisioner deletes what it created; a deletion answered 503 or 429 is
retried, so a short outage or throttling of the API server does not leave a namespace or pod behind.
The cluster is tests/provisionerharness.py's, with faults armed on its store.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.cluster.interface import ClusterError, ServiceUnavailable, TooManyRequests
from gateway.provisioner import PodFailed
from tests.provisionerharness import (
    FAILING_IMAGE,
    WAIT,
    Env,
    assert_nothing_left,
    env_fixture,  # noqa: F401 (the ``env`` fixture, which pytest finds by name)
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("error", [ServiceUnavailable("etcd is electing a leader"),
                                   TooManyRequests("too many requests", retry_after_seconds=1)],
                         ids=["503", "429"])
@pytest.mark.parametrize(("resource", "shared"), [("namespaces", False), ("pods", True)],
                         ids=["own-namespace", "shared-namespace-pod"])
async def test_deletions_refused_twice_are_retried(env: Env, error: ClusterError, resource: str, shared: bool) -> None:
    """A kernel's own namespace (deleted with everything in it), or its pod in the shared namespace."""
    provisioner = env.provisioner_with(shared_namespace=shared)
    request = env.request(KERNEL_IMAGE=FAILING_IMAGE)
    env.store.faults.inject("delete", resource, error=error, times=2)

    with pytest.raises(PodFailed):
        await asyncio.wait_for(provisioner.launch(request), WAIT)

    await assert_nothing_left(env.admin, request.kernel_id)
