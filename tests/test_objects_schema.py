"""Every object the builders make passes the Kubernetes OpenAPI schema, strictly (no unknown fields).

Kept apart from the other object tests: importing the schema validator alone
takes seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.objects.names import kernel_resource_name
from gateway.objects.namespace import kernel_namespace, kernel_role_binding
from gateway.objects.pod import kernel_objects, owned_by
from gateway.objects.template import parse_template

kubernetes_validate = pytest.importorskip("kubernetes_validate")

KERNEL_ID = "5e755458-a114-4215-96b7-bcb016fc7b62"
KUBERNETES_VERSION = "1.32"  # the kubectl and kind version the project targets
SEED_TEMPLATE = (Path(__file__).parent / "data" / "kernel-pod.yaml").read_text()
COMPANIONS = """
---
apiVersion: v1
kind: Service
metadata: {name: $kernel_username-svc, labels: {user: $kernel_username}}
spec: {selector: {kernel_id: $kernel_id}, ports: [{port: 8888}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: "$kernel_username.config"}
data: {user: $kernel_username}
"""


@pytest.mark.parametrize("username", ["alice", "Alice Smith, " + "x" * 200])
def test_every_object_passes_the_kubernetes_schema(username):
    objects = kernel_objects(
        parse_template(SEED_TEMPLATE + COMPANIONS),
        kernel_id=KERNEL_ID,
        username=username,
        namespace="ns",
        service_account="default",
        image="elyra/kernel-py:dev",
        env={"KERNEL_CPUS": "1", "KERNEL_MEMORY_LIMIT": "2Gi", "KERNEL_GPUS": "1", "KERNEL_UID": "1001"},
        launcher_env={"RESPONSE_ADDRESS": "10.1.2.3:8877", "PUBLIC_KEY": "MIGfMA0GCSqGSIb3", "PORT_RANGE": "0..0"},
        response_address="10.1.2.3:8877",
    )
    created = {**objects.pod, "metadata": {**objects.pod["metadata"], "uid": "pod-uid-1"}}
    name = kernel_resource_name(username, KERNEL_ID)
    for obj in (
        objects.pod,
        *owned_by(created, objects.companions),
        kernel_namespace(name, KERNEL_ID),
        kernel_role_binding(name, "kernel-controller", "default", KERNEL_ID),
    ):
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_catches_a_wrongly_typed_field():
    objects = kernel_objects(
        parse_template(SEED_TEMPLATE), kernel_id=KERNEL_ID, username="alice", namespace="ns",
        service_account="default", image="i", env={},
    )
    broken = {**objects.pod, "spec": {**objects.pod["spec"], "restartPolicy": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
