"""Kernels the provisioner launches on the simulated cluster, run, restart, release, and reports dead.

Each of the three namespace modes (a namespace of the kernel's own, one the
client names, the gateway's), the environment the kernel pod gets, and the
deaths of kernels whose pods end on their own.  The cluster is
tests/provisionerharness.py's; tests talk to the kernels with jupyter_client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest
from jupyter_client.asynchronous import AsyncKernelClient

from gateway.provisioner import PodProvisioner, ResponseListener, RunningKernel
from tests.podwait import phase_is, wait_for_pod, wait_for_pod_deleted
from tests.provisionerharness import (
    GATEWAY_NAMESPACE,
    KERNEL_CLUSTER_ROLE,
    RBAC,
    SILENT_IMAGE,
    WAIT,
    Env,
    assert_nothing_left,
    env_fixture,  # noqa: F401 (the ``env`` fixture, which pytest finds by name)
    exists,
    labelled,
    processes_mentioning,
)

pytestmark = pytest.mark.slow

KERNEL_NAMESPACE_LABELS = {"app": "enterprise-gateway", "component": "kernel"}
"""The labels of a namespace an operator prepared for kernels, as the seed's kernel-ns carries them."""


async def run(running: RunningKernel, code: str) -> list[str]:
    """Execute ``code`` in the kernel; its ``text/plain`` results."""
    client = AsyncKernelClient()
    client.load_connection_info(running.connection.to_jupyter())
    client.hb_channel.time_to_dead = 10.0  # a loaded test machine may miss the 1s default
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=WAIT)
        results: list[str] = []

        def on_output(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "execute_result":
                results.append(msg["content"]["data"]["text/plain"])

        reply = await client.execute_interactive(code, timeout=WAIT, output_hook=on_output)
        assert reply["content"]["status"] == "ok", reply["content"]
        return results
    finally:
        client.stop_channels()


def container_env(pod: Mapping[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["spec"]["containers"][0]["env"]}


# --------------------------------------------------------------------------- the three namespace modes


async def test_default_mode_runs_the_kernel_in_a_namespace_of_its_own_kept_across_restarts(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERNELGATE_GATEWAY_ONLY", "never-in-a-pod")
    request = env.request(KERNEL_EXTRA="client value", KERNEL_POD_IP="10.9.9.9")

    running = await env.provisioner.launch(request)

    placement = running.placement
    assert placement.owns_namespace and placement.namespace == placement.pod_name == f"alice-{request.kernel_id}"
    namespace = await env.admin.get("namespaces", placement.namespace)
    assert namespace["metadata"]["labels"].items() >= {
        "app": "enterprise-gateway", "component": "kernel", "kernel_id": request.kernel_id}.items()
    binding = await env.admin.get("rolebindings", KERNEL_CLUSTER_ROLE, namespace=placement.namespace)
    assert binding["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole", "name": KERNEL_CLUSTER_ROLE}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "default", "namespace": placement.namespace}]
    pod = await env.admin.get("pods", placement.pod_name, namespace=placement.namespace)
    assert pod["metadata"]["labels"]["kernel_id"] == request.kernel_id
    assert pod["metadata"]["labels"]["app"] == "enterprise-gateway"
    assert pod["metadata"]["labels"]["component"] == "kernel"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["metadata"]["uid"] == running.pod_uid and pod["status"]["podIP"] == running.pod_ip
    variables = container_env(pod)
    assert variables["KERNEL_ID"] == request.kernel_id and variables["KERNEL_EXTRA"] == "client value"
    assert variables["KERNEL_RESPONSE_KEY"] == env.listener.public_key
    assert variables["PUBLIC_KEY"] == env.listener.legacy_public_key
    assert variables["KERNEL_POD_IP"] == {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}
    assert "KERNELGATE_GATEWAY_ONLY" not in variables and "PATH" not in variables
    assert running.connection.key not in json.dumps(pod)
    assert running.connection.ip == running.pod_ip

    assert await run(running, "x = 41\n1+1") == ["2"]
    assert processes_mentioning(request.kernel_id)  # what the fixture checks is gone at the end

    # A restart: stop, then launch with the same placement; namespace and role binding stay as they are.
    await env.provisioner.stop(running, grace_seconds=1)
    assert env.provisioner.pod_phase(request.kernel_id) is None
    restarted = await env.provisioner.launch(request, placement)

    assert restarted.placement == placement and restarted.pod_uid != running.pod_uid
    assert (await env.admin.get("namespaces", placement.namespace))["metadata"]["uid"] == namespace["metadata"]["uid"]
    kept = await env.admin.get("rolebindings", KERNEL_CLUSTER_ROLE, namespace=placement.namespace)
    assert kept["metadata"]["uid"] == binding["metadata"]["uid"]
    assert await run(restarted, "'x' in globals(), 1+1") == ["(False, 2)"]

    await env.provisioner.stop(restarted, grace_seconds=1)
    await env.provisioner.release(placement)
    await assert_nothing_left(env.admin, request.kernel_id)
    assert not await exists(env.admin, "namespaces", placement.namespace)


async def test_kernel_namespace_is_used_as_is_and_survives_release(env: Env) -> None:
    await env.admin.create("namespaces", {"metadata": {"name": "team-a", "labels": KERNEL_NAMESPACE_LABELS}})
    await env.admin.create("serviceaccounts", {"metadata": {"name": "team-sa"}}, namespace="team-a")
    request = env.request(KERNEL_NAMESPACE="team-a", KERNEL_SERVICE_ACCOUNT_NAME="team-sa")

    running = await env.provisioner.launch(request)

    assert (running.placement.namespace, running.placement.service_account) == ("team-a", "team-sa")
    assert not running.placement.owns_namespace
    pod = await env.admin.get("pods", running.placement.pod_name, namespace="team-a")
    assert pod["spec"]["serviceAccountName"] == "team-sa"
    assert (await env.admin.list("rolebindings", namespace="team-a"))["items"] == []
    assert await labelled(env.admin, "namespaces", request.kernel_id) == []
    assert await run(running, "1+1") == ["2"]

    await env.provisioner.stop(running, grace_seconds=1)
    await env.provisioner.release(running.placement)
    await assert_nothing_left(env.admin, request.kernel_id)
    assert await exists(env.admin, "namespaces", "team-a")
    assert await exists(env.admin, "serviceaccounts", "team-sa", "team-a")


async def test_shared_namespace_puts_kernels_in_the_gateway_namespace(env: Env) -> None:
    provisioner = env.provisioner_with(shared_namespace=True)
    request = env.request(username="bob")

    running = await provisioner.launch(request)

    assert running.placement.namespace == GATEWAY_NAMESPACE and not running.placement.owns_namespace
    assert await labelled(env.admin, "rolebindings", request.kernel_id) == []
    assert await run(running, "1+1") == ["2"]
    await provisioner.stop(running, grace_seconds=1)
    await provisioner.release(running.placement)
    await assert_nothing_left(env.admin, request.kernel_id)
    assert await exists(env.admin, "namespaces", GATEWAY_NAMESPACE)


# --------------------------------------------------------------------------- the kernel pod's environment


async def test_without_legacy_payloads_the_pod_gets_no_legacy_key(env: Env) -> None:
    async with ResponseListener(host="127.0.0.1", port=0, accept_legacy_payloads=False) as listener:
        settings = replace(env.settings, response_address=f"127.0.0.1:{listener.port}", port_range="40000..40999")
        provisioner = PodProvisioner(env.gateway, env.pods, listener, settings)
        request = env.request(KERNEL_IMAGE=SILENT_IMAGE, timeout=600)
        pod_name = f"alice-{request.kernel_id}"
        launching = asyncio.ensure_future(provisioner.launch(request))
        try:
            pod = await wait_for_pod(env.admin, pod_name, pod_name, phase_is("Running"), timeout=WAIT)
        finally:
            launching.cancel()
            await asyncio.gather(launching, return_exceptions=True)

    variables = container_env(pod)
    assert variables["KERNEL_RESPONSE_KEY"] == listener.public_key and "PUBLIC_KEY" not in variables
    assert variables["PORT_RANGE"] == "40000..40999"
    assert variables["EG_RESPONSE_ADDRESS"] == variables["RESPONSE_ADDRESS"] == settings.response_address
    await assert_nothing_left(env.admin, request.kernel_id)


# --------------------------------------------------------------------------- deaths


async def test_deaths_reports_pods_that_die_on_their_own_but_not_stopped_ones(env: Env) -> None:
    requests = [env.request(username=name) for name in ("deleted", "killed", "stopped")]
    deleted, killed, stopped = await asyncio.gather(*(env.provisioner.launch(r) for r in requests))
    reported: asyncio.Queue[str] = asyncio.Queue()

    async def follow() -> None:
        async for kernel_id in env.provisioner.deaths():
            reported.put_nowait(kernel_id)

    following = asyncio.ensure_future(follow())
    try:
        await env.provisioner.stop(stopped, grace_seconds=1)
        await env.admin.delete("pods", deleted.placement.pod_name, namespace=deleted.placement.namespace)
        # Events arrive in order: had the stopped pod been reported, it would come first.
        assert await asyncio.wait_for(reported.get(), WAIT) == requests[0].kernel_id

        assert env.agent.oom_kill(killed.placement.namespace, killed.placement.pod_name)
        assert await asyncio.wait_for(reported.get(), WAIT) == requests[1].kernel_id
        assert env.provisioner.pod_phase(requests[1].kernel_id) == "Failed"

        # The kernel service relaunches a dead kernel in place: the failed pod makes way for a new one.
        relaunched = await env.provisioner.launch(requests[1], killed.placement)
        assert relaunched.pod_uid != killed.pod_uid
        assert await run(relaunched, "1+1") == ["2"]
        await env.provisioner.stop(relaunched, grace_seconds=1)
        assert reported.empty()
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
    for running in (deleted, killed, stopped):
        await env.provisioner.release(running.placement)
    await wait_for_pod_deleted(env.admin, deleted.placement.namespace, deleted.placement.pod_name)
    for request in requests:
        await assert_nothing_left(env.admin, request.kernel_id)
