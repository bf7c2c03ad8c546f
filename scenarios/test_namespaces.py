"""Where kernels run, and that the gateway removes only what it created.

* A namespace the user prepared (``KERNEL_NAMESPACE`` with its own service
  account ``KERNEL_SERVICE_ACCOUNT_NAME``, the seed's ``kernel-ns`` /
  ``kernel-sa`` example) is used as is: nothing is created there but the pod,
  and shutting the kernel down deletes only the pod.
* ``EG_SHARED_NAMESPACE=True``: kernels run in the gateway's own namespace.
* Users are isolated: alice's and bob's kernels live in different namespaces,
  a kernel's service account can do nothing in the other's, and neither
  user can start a kernel in the other's namespace.

The default mode (a namespace per kernel) is in ``test_lifecycle.py``.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from gateway.objects.record import record_name

from .client import KERNEL_NAME, GatewayClient
from .observe import kernel_objects, kernel_pod, may, service_account_identity, wait_until
from .targets import Endpoint

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow]

RBAC = "rbac.authorization.k8s.io"
LABELS = {"app": "enterprise-gateway", "component": "kernel"}


def _prepared_namespace(name: str, account: str) -> list[tuple[str, dict[str, Any]]]:
    """What an operator applies for a kernel namespace of their own (the seed's example)."""
    return [
        ("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": LABELS}}),
        ("serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                             "metadata": {"name": account, "namespace": name, "labels": LABELS}}),
        ("rolebindings", {
            "apiVersion": f"{RBAC}/v1", "kind": "RoleBinding",
            "metadata": {"name": "kernel-controller", "namespace": name, "labels": LABELS},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": name}],
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "kernel-controller"},
        }),
    ]


async def _pod_gone(gateway: Endpoint, kernel_id: str) -> None:
    await wait_until(gateway.observer, "pods", lambda pods: not pods, label_selector=f"kernel_id={kernel_id}",
                     timeout=gateway.wait, what=f"the pod of kernel {kernel_id} gone")


async def test_a_prepared_namespace_and_service_account_are_used_and_left_as_they_were(
        gateway: Endpoint, client: GatewayClient) -> None:
    namespace, account = f"kernel-ns-{uuid.uuid4().hex[:6]}", "kernel-sa"
    prepared = []
    for resource, body in _prepared_namespace(namespace, account):
        created = await gateway.observer.create(resource, body, namespace=body["metadata"].get("namespace"))
        prepared.append((resource, created["metadata"]["name"], created["metadata"]["uid"]))
    try:
        kernel_id = (await client.start_kernel("alice", KERNEL_NAMESPACE=namespace,
                                               KERNEL_SERVICE_ACCOUNT_NAME=account))["id"]
        try:
            pod = await kernel_pod(gateway.observer, kernel_id, timeout=gateway.wait)
            assert pod["metadata"]["namespace"] == namespace
            assert pod["spec"]["serviceAccountName"] == account
            # Only the pod is the gateway's there: no namespace, no role binding of the kernel's own; its record
            # lives in the gateway's namespace.
            assert await kernel_objects(gateway.observer, kernel_id) == {
                f"pods/{namespace}/{pod['metadata']['name']}", _record(gateway, kernel_id)}
            async with client.channels(kernel_id) as channels:
                reply = await channels.execute("1+1")
                assert (reply.status, reply.results) == ("ok", ["2"])
        finally:
            await client.shutdown_kernel(kernel_id)
        await _pod_gone(gateway, kernel_id)
        for resource, name, uid in prepared:
            obj = await gateway.observer.get(resource, name, namespace=None if resource == "namespaces" else namespace)
            assert obj["metadata"]["uid"] == uid and not obj["metadata"].get("deletionTimestamp"), (resource, name)
        bindings = await gateway.observer.list("rolebindings", namespace=namespace)
        assert [b["metadata"]["name"] for b in bindings["items"]] == ["kernel-controller"]
    finally:
        await gateway.observer.delete("namespaces", namespace)


async def test_a_shared_namespace_gateway_runs_kernels_in_its_own_namespace(
        shared_gateway: Endpoint, shared_client: GatewayClient) -> None:
    gateway, client = shared_gateway, shared_client
    namespace = await gateway.observer.get("namespaces", gateway.gateway_namespace)
    kernel_id = (await client.start_kernel("alice"))["id"]
    try:
        pod = await kernel_pod(gateway.observer, kernel_id, timeout=gateway.wait)
        assert pod["metadata"]["namespace"] == gateway.gateway_namespace
        assert await kernel_objects(gateway.observer, kernel_id) == {
            f"pods/{gateway.gateway_namespace}/{pod['metadata']['name']}", _record(gateway, kernel_id)}
        async with client.channels(kernel_id) as channels:
            reply = await channels.execute("1+1")
            assert (reply.status, reply.results) == ("ok", ["2"])
    finally:
        await client.shutdown_kernel(kernel_id)
    await _pod_gone(gateway, kernel_id)
    kept = await gateway.observer.get("namespaces", gateway.gateway_namespace)
    assert kept["metadata"]["uid"] == namespace["metadata"]["uid"] and not kept["metadata"].get("deletionTimestamp")


async def test_users_kernels_are_isolated_from_each_other(gateway: Endpoint, client: GatewayClient) -> None:
    kernels: dict[str, str] = {}
    try:
        for user in ("alice", "bob"):
            kernels[user] = (await client.start_kernel(user))["id"]
        pods = {user: await kernel_pod(gateway.observer, kernel_id, timeout=gateway.wait)
                for user, kernel_id in kernels.items()}
        namespaces = {user: pod["metadata"]["namespace"] for user, pod in pods.items()}
        assert namespaces["alice"] != namespaces["bob"]
        assert gateway.gateway_namespace not in namespaces.values()
        for user, other in (("alice", "bob"), ("bob", "alice")):
            own = namespaces[user]
            identity = service_account_identity(own, pods[user]["spec"].get("serviceAccountName") or "default")
            # kernel-controller lets the kernel manage pods in its own namespace (Spark executors) ...
            assert await may(gateway.observer, *identity, "list", "pods", own)
            # ... and nowhere else: not the other user's, not the gateway's.
            for namespace in (namespaces[other], gateway.gateway_namespace):
                for verb, resource in (("list", "pods"), ("get", "pods"), ("create", "pods"), ("delete", "pods"),
                                       ("get", "secrets"), ("list", "configmaps")):
                    assert not await may(gateway.observer, *identity, verb, resource, namespace), \
                        f"{user}'s kernel may {verb} {resource} in {namespace}"
            # Nor can a user start a kernel in the other's namespace.
            status, body = await client.call("POST", "/api/kernels", {
                "name": KERNEL_NAME, "env": {"KERNEL_USERNAME": user, "KERNEL_NAMESPACE": namespaces[other]}})
            assert status == 403 and body["reason"], body
    finally:
        for kernel_id in kernels.values():
            await client.shutdown_kernel(kernel_id)
    for kernel_id in kernels.values():
        await wait_until(gateway.observer, "namespaces", lambda found: not found,
                         label_selector=f"kernel_id={kernel_id}", timeout=gateway.wait,
                         what=f"the namespace of kernel {kernel_id} gone")


def _record(gateway: Endpoint, kernel_id: str) -> str:
    """The kernel's record, as ``kernel_objects`` names it: a Secret in the gateway's namespace."""
    return f"secrets/{gateway.gateway_namespace}/{record_name(kernel_id)}"

