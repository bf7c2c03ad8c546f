"""Jinja2 kernel-pod templates: the template's logic runs, and no value ever becomes template code or YAML structure.

The templates here are small ones of our own, and Enterprise Gateway 3.3.0's ``kernel-pod.yaml.j2``
downloaded at test time (``tests/egkernelspecs.py``).  Hypothesis feeds every variable text full
of Jinja and YAML syntax, the advisories' payloads among it (CVE-2026-44181, template code through
``KERNEL_POD_NAME``; CVE-2026-44182, YAML through any ``KERNEL_*`` value): the result is always
exactly one Pod with the fields a benign rendering has, each value whole in the one field the
template gave it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.objects.errors import TemplateError
from gateway.objects.jinja import render_jinja_template
from gateway.objects.template import literal_objects, render
from tests.egkernelspecs import eg_template_text

ADVISORY_PAYLOADS = [
    "{{ 7 * 7 }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{% for x in range(3) %}{{ x }}{% endfor %}",
    "{% raw %}x{% endraw %}",
    "{# comment #}",
    "x\n  hostNetwork: true",
    "x\nspec:\n  hostPID: true",
    'x"}\n---\nkind: Pod',
    "x'\n---\napiVersion: v1\nkind: Secret",
    "x\n    securityContext: {privileged: true}",
    "'; hostNetwork: true; '",
    '", "hostNetwork": true, "x": "',
    "&anchor x",
    "*alias",
    "!!python/object/apply:os.system ['id']",
    "- item",
    "key: value",
    "[1, 2]",
    "{a: 1}",
    "|\n  block",
    "...",
    "---",
    "null",
    "true",
    "1e3",
    "0o17",
    "#not a comment",
    "\u2028\u0085",
    "$(PUBLIC_KEY)",
    "${kernel_id}",
]
PIECES = ["{{", "}}", "{%", "%}", "\n", "\r", ": ", "- ", "---", '"', "'", "{", "}", "[", "]", "#", "&", "*", "!", "|",
          ">", "\\", "$", "\t", "kgv0000000"]

hostile = st.one_of(
    st.sampled_from(ADVISORY_PAYLOADS),
    st.lists(st.one_of(st.sampled_from(PIECES), st.sampled_from(ADVISORY_PAYLOADS), st.text(max_size=3)),
             max_size=8).map("".join),
)

# A template of our own using what EG's templates use: if/for, filters, a value in a longer string, quoting.
OWN_TEMPLATE = """\
apiVersion: v1
kind: Pod
metadata:
  name: {{ kernel_pod_name }}
  labels:
    user: "{{ kernel_username }}"
    who: 'kernel of {{ kernel_username | lower }}'
spec:
  containers:
  - name: kernel
    image: {{ kernel_image | yaml_safe }}
    args: [--id, {{ kernel_id }}, "--user={{ kernel_username }}"]
    env:
    {% for name in ["A", "B"] %}
    - name: {{ name }}
      value: {{ kernel_extra }}
    {% endfor %}
    {% if kernel_working_dir %}
    workingDir: {{ kernel_working_dir }}
    {% endif %}
"""


def key_paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every mapping key and list position of ``node``: its structure without its scalars."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key)
            yield from key_paths(value, (*path, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield (*path, index)
            yield from key_paths(item, (*path, index))


def scalars(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for value in node.values():
            yield from scalars(value)
    elif isinstance(node, list):
        for item in node:
            yield from scalars(item)
    else:
        yield node


def own_values(**changes: str) -> dict[str, str]:
    return {"kernel_pod_name": "alice-1", "kernel_username": "Alice", "kernel_image": "elyra/kernel-py:3.3.0",
            "kernel_id": "k-1", "kernel_extra": "plain", "kernel_working_dir": "/home/alice", **changes}


# --------------------------------------------------------------------------- our own template


def test_the_templates_logic_runs_and_each_value_lands_whole_in_its_field() -> None:
    pod = render_jinja_template(OWN_TEMPLATE, own_values())

    assert pod["metadata"] == {"name": "alice-1", "labels": {"user": "Alice", "who": "kernel of alice"}}
    [container] = pod["spec"]["containers"]
    assert container["args"] == ["--id", "k-1", "--user=Alice"]
    assert container["env"] == [{"name": "A", "value": "plain"}, {"name": "B", "value": "plain"}]
    assert container["workingDir"] == "/home/alice"
    assert "workingDir" not in render_jinja_template(OWN_TEMPLATE, own_values(kernel_working_dir=""))["spec"][
        "containers"][0]


@given(values=st.fixed_dictionaries({name: hostile for name in own_values()}))
def test_hostile_values_in_our_template_stay_values(values: dict[str, str]) -> None:
    benign = render_jinja_template(OWN_TEMPLATE, own_values(kernel_working_dir=values["kernel_working_dir"] and "/w"))
    pod = render_jinja_template(OWN_TEMPLATE, values)

    assert sorted(map(repr, key_paths(pod))) == sorted(map(repr, key_paths(benign)))
    [container] = pod["spec"]["containers"]
    assert pod["metadata"]["name"] == values["kernel_pod_name"]
    assert pod["metadata"]["labels"] == {"user": values["kernel_username"],
                                         "who": f"kernel of {values['kernel_username'].lower()}"}
    assert container["args"] == ["--id", values["kernel_id"], f"--user={values['kernel_username']}"]
    assert [entry["value"] for entry in container["env"]] == [values["kernel_extra"]] * 2


@pytest.mark.parametrize(("template", "message"), [
    ("apiVersion: v1\nkind: Pod\n---\napiVersion: v1\nkind: Pod\n", "exactly one document"),
    ("apiVersion: v1\nkind: Service\n", "must render a Pod"),
    ("- a\n- b\n", "must render a Pod"),
    ("kind: Pod\n", "no apiVersion"),
    ("", "exactly one document"),
    ("apiVersion: v1\nkind: Pod\nspec: {{ x }\n", "TemplateSyntaxError"),
    ("apiVersion: v1\nkind: Pod\nmetadata:\n  {{ kernel_id }}: x\n", "mapping key"),
    ("apiVersion: v1\nkind: Pod\nx: {{ ''.__class__.__mro__ }}\n", "SecurityError"),
    ("apiVersion: v1\nkind: Pod\nx: {{ kernel_list.append(1) }}\n", "SecurityError"),
    ('{% include "other.j2" %}', "no loader"),
    ("apiVersion: v1\nkind: Pod\nx: a-{{ kernel_list }}\n", "only stand alone"),
    ("apiVersion: v1\nkind: Pod\nx: {{ 1 // 0 }}\n", "ZeroDivisionError"),
    ("apiVersion: v1\nkind: Pod\nx: 2001-01-01\n", "cannot be sent"),
])
def test_templates_that_cannot_make_one_pod_are_refused_with_the_reason(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message) as caught:
        render_jinja_template(template, {"kernel_id": "k", "kernel_list": [1]}, source="spec/scripts/kernel-pod.yaml.j2")
    assert str(caught.value).startswith("spec/scripts/kernel-pod.yaml.j2: ")


def test_outputs_are_values_of_their_own_type_and_never_yaml_text() -> None:
    template = ("apiVersion: v1\nkind: Pod\nn: {{ uid | int }}\ns: {{ uid }}\nj: {{ data | tojson }}\n"
                "d: {{ data }}\nu: {{ missing }}\nt: x{{ missing }}y\nb: {{ flag }}\nkeep: '{{ text }}'\n")
    data = {"a": [1, "b"]}
    values = {"uid": "1000", "data": data, "flag": True, "text": "it's"}
    pod = render_jinja_template(template, values)

    assert pod == {"apiVersion": "v1", "kind": "Pod", "n": 1000, "s": "1000", "j": '{"a": [1, "b"]}',
                   "d": {"a": [1, "b"]}, "t": "xy", "b": True, "keep": "it's"}
    pod["d"]["a"].append(2)
    assert data == {"a": [1, "b"]}, "the result shares nothing with the values"


def test_a_rendered_pod_passes_the_dollar_substitution_unchanged() -> None:
    pod = render_jinja_template("apiVersion: v1\nkind: Pod\nx: {{ v }}\ny: $kernel_id $$ ${v}\n",
                                {"v": "$kernel_id $$ ${namespace} $(PUBLIC_KEY)"})

    [rendered] = render(literal_objects([pod]), {"kernel_id": "K", "namespace": "N", "v": "V"})
    assert rendered == pod


# --------------------------------------------------------------------------- Enterprise Gateway's template

EG_STRINGS = ("kernel_pod_name", "kernel_namespace", "kernel_id", "kernel_service_account_name", "kernel_image",
              "kernel_working_dir", "kernel_cpus", "kernel_memory", "kernel_gpus", "kernel_cpus_limit",
              "kernel_memory_limit", "kernel_gpus_limit")
"""The variables EG's template writes out as text."""


@pytest.fixture(scope="module")
def eg_template() -> str:
    return eg_template_text()


def eg_values(**changes: Any) -> dict[str, Any]:
    return {"kernel_pod_name": "alice-1", "kernel_namespace": "alice-1", "kernel_id": "k-1",
            "kernel_service_account_name": "default", "kernel_image": "elyra/kernel-py:3.3.0",
            "kernel_uid": "1000", "kernel_gid": "100", **changes}


def test_eg_templates_pod_for_a_plain_request(eg_template: str) -> None:
    pod = render_jinja_template(eg_template, eg_values())

    assert pod["kind"] == "Pod" and pod["metadata"]["name"] == "alice-1" and pod["metadata"]["namespace"] == "alice-1"
    assert pod["metadata"]["labels"]["kernel_id"] == "k-1"
    assert pod["spec"]["securityContext"] == {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100}
    [container] = pod["spec"]["containers"]
    assert container == {"image": "elyra/kernel-py:3.3.0", "name": "alice-1"}
    assert "volumes" not in pod["spec"]


def test_eg_templates_resources_working_dir_and_volumes(eg_template: str) -> None:
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "team"}}]
    mounts = [{"name": "data", "mountPath": "/data", "readOnly": True}]
    pod = render_jinja_template(eg_template, eg_values(
        kernel_cpus="500m", kernel_memory_limit="2Gi", kernel_gpus="1", kernel_working_dir="/home/jovyan/work",
        kernel_volumes=volumes, kernel_volume_mounts=mounts))

    [container] = pod["spec"]["containers"]
    assert container["resources"] == {"requests": {"cpu": "500m", "nvidia.com/gpu": "1"}, "limits": {"memory": "2Gi"}}
    assert container["workingDir"] == "/home/jovyan/work"
    assert container["volumeMounts"] == mounts and pod["spec"]["volumes"] == volumes


@given(data=st.data())
def test_hostile_values_in_eg_templates_stay_values(eg_template: str, data: st.DataObject) -> None:
    chosen = data.draw(st.lists(st.sampled_from(EG_STRINGS), unique=True, min_size=1), label="variables")
    values = eg_values(**{name: data.draw(hostile, label=name) for name in chosen})
    # The same template logic with harmless text: what fields exist may depend on which values are empty.
    benign = render_jinja_template(eg_template, {name: (value and "v") for name, value in values.items()})
    pod = render_jinja_template(eg_template, values)

    assert sorted(map(repr, key_paths(pod))) == sorted(map(repr, key_paths(benign)))
    texts = [value for value in scalars(pod) if isinstance(value, str)]
    for name in chosen:
        if values[name]:
            assert values[name] in texts, f"{name} is not one whole value of the pod"
    assert all(key in ("apiVersion", "kind", "metadata", "spec") for key in pod)



@pytest.mark.parametrize("payload", ADVISORY_PAYLOADS)
def test_the_advisories_payloads_in_every_variable_of_eg_templates(eg_template: str, payload: str) -> None:
    values = eg_values(**dict.fromkeys(EG_STRINGS, payload), kernel_username=payload)
    benign = render_jinja_template(eg_template, eg_values(**dict.fromkeys(EG_STRINGS, "v")))
    pod = render_jinja_template(eg_template, values)

    assert sorted(map(repr, key_paths(pod))) == sorted(map(repr, key_paths(benign)))
    assert pod["metadata"]["name"] == payload and pod["spec"]["containers"][0]["workingDir"] == payload
    assert pod["spec"]["containers"][0]["resources"]["limits"]["memory"] == payload
