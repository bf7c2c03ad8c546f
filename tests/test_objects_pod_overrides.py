"""The gateway's fields of the kernel pod always win over the template's, and templates that cannot make one.

The pod's name, namespace, labels, restart policy, service account and
security context are the gateway's; the template's image and sidecars are
kept; a template that cannot make a kernel pod (no container; malformed env,
labels or metadata) is a TemplateError.
"""

from __future__ import annotations

import pytest

from gateway.objects.errors import TemplateError
from gateway.objects.pod import kernel_pod
from gateway.objects.template import parse_template
from tests.kernelpods import KERNEL_ID, LABELLED_TEMPLATE


def test_the_gateway_fields_override_the_template():
    pod = kernel_pod(
        LABELLED_TEMPLATE, kernel_id=KERNEL_ID, username="bob", namespace="ns", service_account="sa",
        image="elyra/kernel-py:dev", env={"KERNEL_LANGUAGE": "scala"},
    )
    kernel, sidecar = pod["spec"]["containers"]
    assert kernel["name"] == pod["metadata"]["name"] == f"bob-{KERNEL_ID}"
    assert kernel["image"] == "elyra/kernel-py:dev"  # the template left it empty
    assert sidecar == {"name": "sidecar", "image": "busybox"}
    assert kernel["env"][:2] == [{"name": "FIXED", "value": "1"}, {"name": "KERNEL_LANGUAGE", "value": "scala"}]
    assert pod["metadata"]["labels"]["app"] == "enterprise-gateway"
    assert pod["spec"]["restartPolicy"] == "Never" and pod["spec"]["serviceAccountName"] == "sa"


def test_what_the_gateway_relies_on_wins_over_a_template_that_says_otherwise():
    template = parse_template(
        """
apiVersion: v1
kind: Pod
metadata: {name: mine, namespace: elsewhere, labels: {app: other, component: web, kernel_id: wrong}}
spec:
  restartPolicy: Always
  serviceAccountName: admin
  securityContext: {runAsUser: 0, runAsNonRoot: false, seccompProfile: {type: RuntimeDefault}}
  containers: [{name: mine, image: my/image}]
"""
    )
    pod = kernel_pod(template, kernel_id=KERNEL_ID, username="bob", namespace="ns", service_account="sa",
                     image="elyra/kernel-py:dev", env={})
    assert pod["metadata"]["name"] == pod["spec"]["containers"][0]["name"] == f"bob-{KERNEL_ID}"
    assert pod["metadata"]["namespace"] == "ns"
    assert pod["metadata"]["labels"] == {"app": "enterprise-gateway", "component": "kernel", "kernel_id": KERNEL_ID}
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["serviceAccountName"] == "sa"
    assert pod["spec"]["securityContext"] == {
        "runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100, "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_a_template_image_is_kept():
    template = parse_template("apiVersion: v1\nkind: Pod\nspec: {containers: [{name: c, image: my/image:1}]}\n")
    pod = kernel_pod(template, kernel_id=KERNEL_ID, username="a", namespace="ns", service_account="default",
                     image="elyra/kernel-py:dev", env={})
    assert pod["spec"]["containers"][0]["image"] == "my/image:1"


@pytest.mark.parametrize(
    "text, complaint",
    [
        ("apiVersion: v1\nkind: Pod\nspec: {}\n", "containers"),
        ("apiVersion: v1\nkind: Pod\nspec: {containers: []}\n", "containers"),
        ("apiVersion: v1\nkind: Pod\nspec: {containers: [{name: c, env: {A: b}}]}\n", "env"),
        ("apiVersion: v1\nkind: Pod\nspec: {containers: [{name: c, env: [{value: b}]}]}\n", "no name"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {labels: {'bad key!': x}}\nspec: {containers: [{name: c}]}\n", "key"),
        ("apiVersion: v1\nkind: Pod\nmetadata: [1]\nspec: {containers: [{name: c}]}\n", "metadata"),
    ],
)
def test_templates_that_cannot_make_a_kernel_pod_are_template_errors(text, complaint):
    with pytest.raises(TemplateError, match=complaint):
        kernel_pod(parse_template(text), kernel_id=KERNEL_ID, username="a", namespace="ns",
                   service_account="default", image="i", env={})
