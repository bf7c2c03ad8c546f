"""RBAC for service accounts, selectors, and injected faults."""

from __future__ import annotations

import asyncio

import pytest

from fakes.state.faults import Faults
from gateway.aio import Backoff
from gateway.cluster.interface import BadRequest, Cluster, Forbidden, ServiceUnavailable

from .conftest import Target
from .helpers import configmap, pod


async def _service_account(cluster: Cluster, ns: str, name: str) -> None:
    await cluster.create("serviceaccounts", {"metadata": {"name": name}}, namespace=ns)


async def test_a_service_account_without_rights_is_forbidden(target: Target, cluster: Cluster, ns: str) -> None:
    await _service_account(cluster, ns, "kernel")
    as_kernel = await target.open_as_service_account(ns, "kernel")
    with pytest.raises(Forbidden) as err:
        await as_kernel.list("pods", namespace=ns)
    assert err.value.message == (
        f'pods is forbidden: User "system:serviceaccount:{ns}:kernel" cannot list resource "pods" '
        f'in API group "" in the namespace "{ns}"'
    )
    with pytest.raises(Forbidden) as err:
        await as_kernel.get("configmaps", "x", namespace=ns)
    assert err.value.message.startswith('configmaps "x" is forbidden: User')
    assert await as_kernel.can_i("list", "pods", namespace=ns) is False


async def test_a_role_binding_grants_exactly_its_rules(target: Target, cluster: Cluster, ns: str) -> None:
    await _service_account(cluster, ns, "gateway")
    await cluster.create("roles", {
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    }, namespace=ns)
    await cluster.create("rolebindings", {
        "metadata": {"name": "gateway-reads-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "gateway", "namespace": ns}],
    }, namespace=ns)
    await cluster.create("pods", pod("p"), namespace=ns)
    as_gateway = await target.open_as_service_account(ns, "gateway")
    listed = await as_gateway.list("pods", namespace=ns)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["p"]
    assert (await as_gateway.get("pods", "p", namespace=ns))["metadata"]["name"] == "p"
    assert await as_gateway.can_i("get", "pods", namespace=ns)
    assert not await as_gateway.can_i("delete", "pods", namespace=ns)
    with pytest.raises(Forbidden):
        await as_gateway.delete("pods", "p", namespace=ns)
    with pytest.raises(Forbidden):
        await as_gateway.list("pods", namespace="default")



async def test_a_subject_access_review_answers_for_its_subject(target: Target, cluster: Cluster, ns: str) -> None:
    """An administrator asks about someone else: answered (never stored), as ``kubectl auth can-i --as`` does."""
    await _service_account(cluster, ns, "reader")
    await cluster.create("roles", {
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
    }, namespace=ns)
    await cluster.create("rolebindings", {
        "metadata": {"name": "reader-reads-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
    }, namespace=ns)

    async def may(verb: str, namespace: str) -> bool:
        review = await cluster.create("subjectaccessreviews", {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": f"system:serviceaccount:{ns}:reader",
                     "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
                     "resourceAttributes": {"verb": verb, "resource": "pods", "namespace": namespace}},
        })
        assert review["kind"] == "SubjectAccessReview"
        return review["status"]["allowed"]

    # A real API server's authorizer learns of the new binding from its informer a moment after the
    # write (nothing to watch for it): a bounded retry with back-off.
    loop = asyncio.get_running_loop()
    deadline, backoff = loop.time() + 10.0, Backoff(base=0.05, cap=0.5)
    while not await may("list", ns):
        assert loop.time() < deadline, "the role binding was not in effect within 10 s"
        await asyncio.sleep(backoff.fail())
    assert await may("delete", ns) is False
    assert await may("list", "default") is False

async def test_label_selectors(cluster: Cluster, ns: str) -> None:
    for name, labels in (("a", {"app": "kernel", "tier": "1"}), ("b", {"app": "kernel"}), ("c", {"app": "web"})):
        await cluster.create("configmaps", configmap(name, labels=labels), namespace=ns)

    async def names(selector: str) -> list[str]:
        listed = await cluster.list("configmaps", namespace=ns, label_selector=selector)
        return [i["metadata"]["name"] for i in listed["items"] if i["metadata"]["name"] in "abc"]

    assert await names("app=kernel") == ["a", "b"]
    assert await names("app==kernel,tier") == ["a"]
    assert await names("app!=kernel") == ["c"]
    assert await names("app in (web, other)") == ["c"]
    assert await names("app notin (web),!tier") == ["b"]
    with pytest.raises(BadRequest):
        await cluster.list("configmaps", namespace=ns, label_selector="app in web")


async def test_field_selectors(cluster: Cluster, ns: str) -> None:
    await cluster.create("pods", pod("one"), namespace=ns)
    await cluster.create("pods", pod("two"), namespace=ns)
    await cluster.patch("pods", "two", {"status": {"phase": "Running"}}, namespace=ns, subresource="status")
    running = await cluster.list("pods", namespace=ns, field_selector="status.phase=Running")
    assert [i["metadata"]["name"] for i in running["items"]] == ["two"]
    others = await cluster.list("pods", namespace=ns, field_selector="status.phase!=Running,metadata.name!=x")
    assert [i["metadata"]["name"] for i in others["items"]] == ["one"]
    by_ns = await cluster.list("pods", field_selector=f"metadata.namespace={ns},spec.nodeName=")
    assert {i["metadata"]["name"] for i in by_ns["items"]} == {"one", "two"}
    with pytest.raises(BadRequest) as err:
        await cluster.list("pods", namespace=ns, field_selector="spec.image=x")
    assert err.value.message == "field label not supported: spec.image"


async def test_an_injected_error_fires_the_given_number_of_times(faults: Faults, cluster: Cluster, ns: str) -> None:
    await cluster.create("configmaps", configmap("x"), namespace=ns)
    faults.inject("get", "configmaps", error=ServiceUnavailable("etcd is on holiday"), times=1)
    with pytest.raises(ServiceUnavailable):
        await cluster.get("configmaps", "x", namespace=ns)
    assert (await cluster.get("configmaps", "x", namespace=ns))["metadata"]["name"] == "x"


async def test_a_fault_for_one_namespace_spares_the_others(faults: Faults, cluster: Cluster, ns: str) -> None:
    faults.inject("list", "configmaps", error=ServiceUnavailable("down"), namespace=ns)
    with pytest.raises(ServiceUnavailable):
        await cluster.list("configmaps", namespace=ns)
    await cluster.list("configmaps", namespace="default")
    faults.clear()
    await cluster.list("configmaps", namespace=ns)


async def test_injected_latency_delays_the_call(faults: Faults, cluster: Cluster, ns: str) -> None:
    await cluster.create("configmaps", configmap("slow"), namespace=ns)
    faults.inject("get", "configmaps", latency=0.5, times=1)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(cluster.get("configmaps", "slow", namespace=ns), 0.02)
    # The fault is spent: the next call is answered at once.
    fetched = await asyncio.wait_for(cluster.get("configmaps", "slow", namespace=ns), 5)
    assert fetched["metadata"]["name"] == "slow"
