"""A shutdown whose namespace the API would not delete leaves the kernel's record for the lease holder to finish.

The gateway has no grant to list namespaces: a kernel's namespace is found only through its record
(or its pod).  So when the API refuses to delete it, every attempt of the shutdown, the record stays
``terminating``; the client has its answer all the same, and the lease holder deletes the namespace,
then the record, once the API takes deletions again (trying again, after a pause, while it does not).
The cluster is tests/gatewayharness.py's, with faults armed on its store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cluster.interface import ServiceUnavailable
from gateway.kernels.kernel import DEAD
from gateway.provisioner.apicalls import CLEANUP_ATTEMPTS
from tests.gatewayharness import GATEWAY_NAMESPACE, WAIT, client_env, shared_cluster
from tests.replicawatch import kernel_record, lease_held, nothing_left, record_name

pytestmark = pytest.mark.slow

FAST = {"shutdown_wait_time": 1.0, "deadline_grace": 1.0}
"""The record's deadline, once the shutdown leaves it, is ``deadline_grace`` away: the lease holder acts soon."""


@pytest.mark.parametrize("elsewhere", [False, True], ids=["by-the-lease-holder", "by-another-replica"])
async def test_a_namespace_the_api_would_not_delete_is_deleted_by_the_lease_holder(tmp_path: Path,
                                                                                   elsewhere: bool) -> None:
    async with shared_cluster(tmp_path) as cluster:
        holder = await cluster.gateway("gateway-a", **FAST)
        await lease_held(cluster.admin, lambda name, _: name == holder.identity, timeout=WAIT,
                         what="gateway-a holds the duties")
        serving = await cluster.gateway("gateway-b", **FAST) if elsewhere else holder
        kernel = await serving.service.start_kernel(name=None, env=client_env("own"), username_fallback="gateway")
        assert kernel.placement is not None and kernel.placement.owns_namespace
        namespace = kernel.placement.namespace
        # Every attempt of the shutdown is refused, and so is the lease holder's first.
        cluster.store.faults.inject("delete", "namespaces", error=ServiceUnavailable("etcd is electing a leader"),
                                    times=2 * CLEANUP_ATTEMPTS)

        await serving.service.shutdown(kernel.id)

        assert kernel.state == DEAD, "the client's shutdown did not end the kernel"
        secret = await cluster.admin.get("secrets", record_name(kernel.id), namespace=GATEWAY_NAMESPACE)
        assert kernel_record(secret)["phase"] == "terminating", "the record went while the namespace stayed"
        found = await cluster.admin.get("namespaces", namespace)
        assert not found["metadata"].get("deletionTimestamp")
        assert len(cluster.store.faults) == 1, "the shutdown did not try the namespace's deletion as often as it may"

        await nothing_left(cluster.admin, [kernel.id], [namespace], timeout=WAIT)
        assert len(cluster.store.faults) == 0, "the lease holder did not meet the API's refusals"
