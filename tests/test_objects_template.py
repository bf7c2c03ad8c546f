"""Kernel-pod templates: parsed once as YAML, then variables substituted into string values only."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.objects.errors import TemplateError
from gateway.objects.template import SEED_VARIABLES, parse_template, render, substitute

SEED_TEMPLATE = (Path(__file__).parent / "data" / "kernel-pod.yaml").read_text()

# Pieces that would break out of their field if a value were pasted into YAML text.
HOSTILE_PIECES = [
    "\n", "\r\n", ": ", "{", "}", "[", "]", "- ", "#", "'", '"', "&anchor ", "*anchor", "!!python/object:os.system",
    "---\n", "...", "\u2028", "\u0085", "\t", "$kernel_id", "${namespace}", "$$", "$", "\\", "%", "@", "|", ">",
    "\nkind: Secret\n", "\n  privileged: true", "null", "true", "0x1F", "1e3", "~",
]
hostile_values = st.one_of(
    st.lists(st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(max_size=5)), max_size=12).map("".join),
    st.text(max_size=200),
    st.just("x" * 20000),
)


def test_the_seed_template_parses_to_one_pod_with_its_variables_as_strings():
    (pod,) = parse_template(SEED_TEMPLATE)
    assert pod["kind"] == "Pod"
    assert pod["metadata"]["name"] == "$kernel_username-$kernel_id"
    assert pod["spec"]["containers"][0]["env"][0] == {"name": "EG_RESPONSE_ADDRESS", "value": "$response_address"}
    assert all(f"${name}" in SEED_TEMPLATE for name in SEED_VARIABLES)


@settings(max_examples=100)
@given(st.dictionaries(st.sampled_from(SEED_VARIABLES), hostile_values, min_size=len(SEED_VARIABLES)))
def test_hostile_values_only_ever_fill_their_own_strings(variables):
    template = parse_template(SEED_TEMPLATE)
    (pod,) = render(template, variables)
    v = variables
    assert pod == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{v['kernel_username']}-{v['kernel_id']}",
            "namespace": v["namespace"],
            "labels": {"kernel_id": v["kernel_id"], "app": "enterprise-gateway"},
        },
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": v["service_account"],
            "containers": [
                {
                    "env": [
                        {"name": "EG_RESPONSE_ADDRESS", "value": v["response_address"]},
                        {"name": "KERNEL_CONNECTION_FILENAME", "value": v["connection_filename"]},
                        {"name": "KERNEL_LANGUAGE", "value": v["language"]},
                        {"name": "SPARK_CONTEXT_INITIALIZATION_MODE", "value": v["spark_context_initialization_mode"]},
                    ],
                    "image": v["docker_image"],
                    "name": f"{v['kernel_username']}-{v['kernel_id']}",
                    "command": ["/etc/bootstrap-kernel.sh"],
                }
            ],
        },
    }


TEMPLATE_WITH_EVERY_PLACEMENT = """
apiVersion: v1
kind: Pod
metadata:
  name: plain
  annotations:
    braced: "pre-${x}-post"
    escaped: "cost: $$5 for $x"
    unknown: "$HOME and ${PATH} and $ alone and ${unclosed"
    adjacent: "$x$x"
    $x: key-is-author-text
spec:
  containers:
  - name: c
    args: ["$x", 3, true, null, 1.5]
"""


@settings(max_examples=100)
@given(hostile_values)
def test_substitution_rules(value):
    (obj,) = render(parse_template(TEMPLATE_WITH_EVERY_PLACEMENT), {"x": value})
    assert obj["metadata"]["annotations"] == {
        "braced": f"pre-{value}-post",
        "escaped": f"cost: $5 for {value}",
        "unknown": "$HOME and ${PATH} and $ alone and ${unclosed",
        "adjacent": value + value,
        "$x": "key-is-author-text",
    }
    assert obj["spec"]["containers"][0]["args"] == [value, 3, True, None, 1.5]


def test_a_value_is_never_substituted_twice():
    assert substitute("$a", {"a": "$b ${b} $$", "b": "LEAK"}) == "$b ${b} $$"


@settings(max_examples=50)
@given(hostile_values)
def test_render_leaves_the_template_untouched_and_shares_nothing_with_it(value):
    template = parse_template(TEMPLATE_WITH_EVERY_PLACEMENT)
    before = copy.deepcopy(template)
    (obj,) = render(template, {"x": value})
    assert template == before
    obj["metadata"]["annotations"]["braced"] = "changed"
    obj["spec"]["containers"][0]["args"].append("more")
    assert template == before


def test_aliases_in_a_template_render_to_independent_copies():
    text = """
apiVersion: v1
kind: Pod
metadata: {name: p, labels: &common {team: $x}}
spec:
  containers: [{name: c, env: [{name: A, value: x}]}]
  nodeSelector: *common
"""
    (obj,) = render(parse_template(text), {"x": "data"})
    assert obj["metadata"]["labels"] == obj["spec"]["nodeSelector"] == {"team": "data"}
    assert obj["metadata"]["labels"] is not obj["spec"]["nodeSelector"]


def test_companions_are_allowed_next_to_the_pod():
    text = SEED_TEMPLATE + "\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n" + (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"
    )
    assert [obj["kind"] for obj in parse_template(text)] == ["Pod", "Service", "ConfigMap"]


POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n"


@pytest.mark.parametrize(
    "text, complaint",
    [
        ("a: [", "not valid YAML"),
        ("- just\n- a list\n", "expected a Kubernetes object"),
        ("", "exactly one Pod"),
        ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", "exactly one Pod"),
        (POD + "---\n" + POD, "exactly one Pod"),
        (POD + "---\napiVersion: apps/v1\nkind: Deployment\n", "Deployment"),
        (POD + "---\napiVersion: v1\nkind: PersistentVolume\n", "PersistentVolume"),
        (POD + "---\napiVersion: v1\nkind: Service\n---\napiVersion: v1\nkind: Service\n", "several Service"),
        ("kind: Pod\nspec: {}\n", "no apiVersion"),
        (POD + "extra: 2024-01-01\n", "date"),
        (POD + "extra: !!binary aGVsbG8=\n", "bytes"),
        (POD + "extra: .inf\n", "inf"),
        (POD + "extra: {1: one}\n", "not a string"),
        (POD + "extra: &loop [*loop]\n", "refers to itself"),
        ("!!python/object:os.system {}\n", "not valid YAML"),
    ],
)
def test_templates_the_gateway_cannot_use_are_refused_with_a_reason(text, complaint):
    with pytest.raises(TemplateError, match=complaint):
        parse_template(text, source="spec/kernel-pod.yaml")


def test_variables_must_be_strings_with_identifier_names():
    template = parse_template(POD)
    with pytest.raises(TypeError):
        render(template, {"x": 3})
    with pytest.raises(ValueError):
        render(template, {"not a name": "v"})
