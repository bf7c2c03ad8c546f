"""The objects made beside the kernel pod: its companions, owned by it, and the kernel's namespace and role binding."""

from __future__ import annotations

import copy

import pytest

from gateway.objects.names import kernel_resource_name
from gateway.objects.namespace import kernel_namespace, kernel_role_binding
from gateway.objects.pod import kernel_objects, owned_by
from tests.kernelpods import KERNEL_ID, LABELLED_TEMPLATE


def test_companions_are_owned_by_the_created_pod():
    objects = kernel_objects(LABELLED_TEMPLATE, kernel_id=KERNEL_ID, username="bob", namespace="ns",
                             service_account="default", image="i", env={})
    created = {**objects.pod, "metadata": {**objects.pod["metadata"], "uid": "pod-uid-1"}}
    before = copy.deepcopy(objects.companions)
    owned = owned_by(created, objects.companions)
    reference = {"apiVersion": "v1", "kind": "Pod", "name": f"bob-{KERNEL_ID}", "uid": "pod-uid-1"}
    assert [obj["metadata"]["ownerReferences"] for obj in owned] == [[reference], [reference]]
    assert objects.companions == before
    assert owned_by(created, owned) == owned  # a second call adds nothing
    with pytest.raises(ValueError, match="uid"):
        owned_by(objects.pod, objects.companions)
    elsewhere = {**created, "metadata": {**created["metadata"], "namespace": "other"}}
    with pytest.raises(ValueError, match="namespace"):
        owned_by(elsewhere, objects.companions)


def test_namespace_and_role_binding_as_enterprise_gateway_creates_them():
    labels = {"app": "enterprise-gateway", "component": "kernel", "kernel_id": KERNEL_ID}
    name = kernel_resource_name("alice", KERNEL_ID)
    assert kernel_namespace(name, KERNEL_ID) == {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels},
    }
    assert kernel_role_binding(name, "kernel-controller", "default", KERNEL_ID) == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "kernel-controller", "namespace": name, "labels": labels},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": name}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kernel-controller"},
    }


@pytest.mark.parametrize(
    "namespace, role, account", [("Bad_NS", "r", "sa"), ("ns", "a/b", "sa"), ("ns", "..", "sa"), ("ns", "r", "SA!")]
)
def test_role_binding_refuses_names_the_api_server_would(namespace, role, account):
    with pytest.raises(ValueError):
        kernel_role_binding(namespace, role, account, KERNEL_ID)
