"""The kernel pods the tests of ``gateway.objects.pod`` build (``tests/test_objects_pod_*.py``).

:data:`SEED_TEMPLATE` is the seed's kernel-pod template and :func:`build` the
objects the gateway makes from it for one kernel; :data:`LABELLED_TEMPLATE`
is a template that substitutes client text into labels, annotations and
names, with companion objects beside the pod.
"""

from __future__ import annotations

from pathlib import Path

from gateway.objects.pod import kernel_objects
from gateway.objects.template import parse_template

SEED_TEMPLATE = parse_template((Path(__file__).parent / "data" / "kernel-pod.yaml").read_text())
KERNEL_ID = "5e755458-a114-4215-96b7-bcb016fc7b62"

LAUNCHER_ENV = {"RESPONSE_ADDRESS": "10.1.2.3:8877", "PUBLIC_KEY": "MIGfMA0GCSqGSIb3", "PORT_RANGE": "0..0"}


def build(**overrides):
    """The objects made from :data:`SEED_TEMPLATE` for kernel :data:`KERNEL_ID` of alice, with ``overrides``."""
    arguments = dict(
        kernel_id=KERNEL_ID,
        username="alice",
        namespace="alice-" + KERNEL_ID,
        service_account="default",
        image="elyra/kernel-py:dev",
        env={},
        launcher_env=LAUNCHER_ENV,
        language="python",
        response_address="10.1.2.3:8877",
        connection_filename="/tmp/kernel.json",
    )
    arguments.update(overrides)
    return kernel_objects(SEED_TEMPLATE, **arguments)


LABELLED_TEMPLATE = parse_template(
    """
apiVersion: v1
kind: Pod
metadata:
  name: ignored
  labels: {user: $kernel_username, team: "$kernel_team", app: something-else}
  annotations: {owner: $kernel_username, port: 8877}
spec:
  containers:
  - name: kernel
    image: ""
    env: [{name: FIXED, value: 1}, {name: KERNEL_LANGUAGE, value: template}]
  - name: sidecar
    image: busybox
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
)
