"""The kernel pod's resource requests and limits, as the client's ``KERNEL_CPUS``/``MEMORY``/``GPUS`` env asks.

Sizes become requests and limits; malformed or contradictory sizes, and sizes
beyond the template's limits, are client errors (400).
"""

from __future__ import annotations

import pytest

from gateway.objects.errors import InvalidKernelRequest
from gateway.objects.pod import kernel_pod
from gateway.objects.template import parse_template
from tests.kernelpods import KERNEL_ID, build


@pytest.mark.parametrize(
    "env, requests, limits",
    [
        ({"KERNEL_CPUS": "500m", "KERNEL_MEMORY": "1Gi"}, {"cpu": "500m", "memory": "1Gi"}, None),
        ({"KERNEL_CPUS": "1", "KERNEL_CPUS_LIMIT": "2.5"}, {"cpu": "1"}, {"cpu": "2.5"}),
        ({"KERNEL_MEMORY": "1e9", "KERNEL_MEMORY_LIMIT": "1Gi"}, {"memory": "1e9"}, {"memory": "1Gi"}),
        ({"KERNEL_GPUS": "2"}, {"nvidia.com/gpu": "2"}, {"nvidia.com/gpu": "2"}),
        ({"KERNEL_GPUS_LIMIT": "1"}, {"nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "1"}),
        ({"KERNEL_CPUS": "", "KERNEL_MEMORY": ""}, None, None),
    ],
)
def test_resources_come_from_the_kernel_env(env, requests, limits):
    container = build(env=env).pod["spec"]["containers"][0]
    resources = container.get("resources", {})
    assert resources.get("requests") == requests
    assert resources.get("limits") == limits


@pytest.mark.parametrize(
    "env, complaint",
    [
        ({"KERNEL_CPUS": "two"}, "KERNEL_CPUS"),
        ({"KERNEL_MEMORY": "4 GB"}, "KERNEL_MEMORY"),
        ({"KERNEL_MEMORY": "-1Gi"}, "KERNEL_MEMORY"),
        ({"KERNEL_MEMORY": "1Gi\nkind: Secret"}, "KERNEL_MEMORY"),
        ({"KERNEL_CPUS_LIMIT": "1" * 40}, "KERNEL_CPUS_LIMIT"),
        ({"KERNEL_CPUS": "2", "KERNEL_CPUS_LIMIT": "1500m"}, "exceeds its limit"),
        ({"KERNEL_MEMORY": "2Gi", "KERNEL_MEMORY_LIMIT": "2G"}, "exceeds its limit"),
        ({"KERNEL_GPUS": "0.5"}, "whole number"),
        ({"KERNEL_GPUS": "1", "KERNEL_GPUS_LIMIT": "2"}, "overcommitted"),
    ],
)
def test_bad_sizes_are_client_errors(env, complaint):
    with pytest.raises(InvalidKernelRequest, match=complaint) as raised:
        build(env=env)
    assert raised.value.status == 400


def test_client_sizes_are_checked_against_the_template_limits():
    template = parse_template(
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: c\n"
        "    resources: {limits: {memory: 2Gi}, requests: {cpu: 100m}}\n"
    )
    arguments = dict(kernel_id=KERNEL_ID, username="a", namespace="ns", service_account="default", image="i")
    pod = kernel_pod(template, env={"KERNEL_MEMORY": "1Gi"}, **arguments)
    assert pod["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"memory": "2Gi"},
    }
    with pytest.raises(InvalidKernelRequest, match="exceeds its limit"):
        kernel_pod(template, env={"KERNEL_MEMORY": "3Gi"}, **arguments)
