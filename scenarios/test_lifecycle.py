"""A kernel's life as a notebook user sees it: start, run code, interrupt, restart, survive its pod's death, stop.

Each scenario talks to the gateway over HTTP and the kernel's WebSocket, and
checks the cluster as its administrator sees it: a kernel is a pod in a
namespace of its own, bound to ``kernel-controller``, and nothing of it is
left once it is shut down.
"""

from __future__ import annotations

import pytest

from .client import GatewayClient, KernelChannels
from .observe import gone, kernel_objects, kernel_pod, wait_until
from .targets import Endpoint

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow]

KERNEL_CLUSTER_ROLE = "kernel-controller"


async def _namespace_and_binding(gateway: Endpoint, kernel_id: str, pod: dict) -> tuple[dict, dict]:
    """The kernel's own namespace and its ``kernel-controller`` RoleBinding, as the administrator reads them."""
    namespace = pod["metadata"]["namespace"]
    found = await gateway.observer.list("namespaces", label_selector=f"kernel_id={kernel_id}")
    assert [ns["metadata"]["name"] for ns in found["items"]] == [namespace]
    binding = await gateway.observer.get("rolebindings", KERNEL_CLUSTER_ROLE, namespace=namespace)
    return found["items"][0], binding


async def test_a_kernel_runs_code_in_its_own_namespace_and_leaves_nothing_when_shut_down(
        gateway: Endpoint, client: GatewayClient) -> None:
    kernel = await client.start_kernel("alice")
    kernel_id = kernel["id"]
    pod = await kernel_pod(gateway.observer, kernel_id, timeout=gateway.wait)
    namespace, binding = await _namespace_and_binding(gateway, kernel_id, pod)
    assert namespace["metadata"]["name"] != gateway.gateway_namespace
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": KERNEL_CLUSTER_ROLE}
    account = pod["spec"].get("serviceAccountName") or "default"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account,
                                    "namespace": namespace["metadata"]["name"]}]

    status, listed = await client.call("GET", "/api/kernels")
    assert status == 200 and kernel_id in [k["id"] for k in listed]
    async with client.channels(kernel_id) as channels:
        reply = await channels.execute("1+1")
        assert (reply.status, reply.results) == ("ok", ["2"])

    await client.shutdown_kernel(kernel_id)
    await gone(gateway.observer, kernel_id, timeout=gateway.wait)
    assert await kernel_objects(gateway.observer, kernel_id) == set()
    status, body = await client.call("GET", f"/api/kernels/{kernel_id}")
    assert status == 404 and body["reason"]


async def test_interrupt_stops_a_long_computation_and_the_kernel_carries_on(
        gateway: Endpoint, client: GatewayClient) -> None:
    kernel_id = (await client.start_kernel("alice"))["id"]
    try:
        async with client.channels(kernel_id) as channels:
            answers = []

            async def interrupt() -> None:
                answers.append((await client.call("POST", f"/api/kernels/{kernel_id}/interrupt"))[0])

            # Interrupted once it shows it runs: a SIGINT that lands between the kernel's "busy"
            # and the start of the code is ignored by ipykernel (ipykernel/kernelbase.py, pre_handler_hook).
            reply = await channels.execute("import time; print('sleeping', flush=True); time.sleep(60)",
                                           on_output=interrupt)
            assert answers == [204]
            assert (reply.status, reply.content.get("ename")) == ("error", "KeyboardInterrupt")
            reply = await channels.execute("1+1")
            assert (reply.status, reply.results) == ("ok", ["2"])
    finally:
        await client.shutdown_kernel(kernel_id)
    await gone(gateway.observer, kernel_id, timeout=gateway.wait)


async def _forgotten(channels: KernelChannels) -> None:
    """The kernel of ``channels`` no longer knows ``x`` (its state was lost) and still computes."""
    reply = await channels.execute("x")
    assert (reply.status, reply.content.get("ename")) == ("error", "NameError")
    reply = await channels.execute("1+1")
    assert (reply.status, reply.results) == ("ok", ["2"])


async def test_restart_gives_a_fresh_kernel_in_the_same_namespace(gateway: Endpoint, client: GatewayClient) -> None:
    kernel_id = (await client.start_kernel("alice"))["id"]
    try:
        old_pod = await kernel_pod(gateway.observer, kernel_id, timeout=gateway.wait)
        namespace, binding = await _namespace_and_binding(gateway, kernel_id, old_pod)
        async with client.channels(kernel_id) as channels:
            assert (await channels.execute("x = 41")).status == "ok"

            status, model = await client.call("POST", f"/api/kernels/{kernel_id}/restart")
            assert status == 200 and model["id"] == kernel_id
            new_pod = await kernel_pod(gateway.observer, kernel_id, timeout=gateway.wait,
                                       other_than=old_pod["metadata"]["uid"])
            assert new_pod["metadata"]["namespace"] == old_pod["metadata"]["namespace"]
            # The same connection goes on with the new kernel.
            await _forgotten(channels)
        kept_namespace, kept_binding = await _namespace_and_binding(gateway, kernel_id, new_pod)
        assert kept_namespace["metadata"]["uid"] == namespace["metadata"]["uid"]
        assert kept_binding["metadata"]["uid"] == binding["metadata"]["uid"]
        await wait_until(gateway.observer, "pods", lambda pods: len(pods) == 1,
                         label_selector=f"kernel_id={kernel_id}", timeout=gateway.wait,
                         what="only the new pod of the restarted kernel")
    finally:
        await client.shutdown_kernel(kernel_id)
    await gone(gateway.observer, kernel_id, timeout=gateway.wait)


async def test_a_kernel_whose_pod_is_deleted_comes_back_with_the_same_id(
        gateway: Endpoint, client: GatewayClient) -> None:
    kernel_id = (await client.start_kernel("alice"))["id"]
    try:
        old_pod = await kernel_pod(gateway.observer, kernel_id, timeout=gateway.wait)
        async with client.channels(kernel_id) as channels:
            assert (await channels.execute("x = 41")).status == "ok"
            # An administrator (or an eviction) deletes the pod behind the gateway's back.
            await gateway.observer.delete("pods", old_pod["metadata"]["name"],
                                          namespace=old_pod["metadata"]["namespace"])
            assert await channels.status("restarting") == "restarting"
            new_pod = await kernel_pod(gateway.observer, kernel_id, timeout=gateway.wait,
                                       other_than=old_pod["metadata"]["uid"])
            assert new_pod["metadata"]["namespace"] == old_pod["metadata"]["namespace"]
            assert await channels.status("idle") == "idle"
            await _forgotten(channels)
        status, model = await client.call("GET", f"/api/kernels/{kernel_id}")
        assert status == 200 and model["id"] == kernel_id
    finally:
        await client.shutdown_kernel(kernel_id)
    await gone(gateway.observer, kernel_id, timeout=gateway.wait)
