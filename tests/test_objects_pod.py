"""The kernel pod built from the seed's template: client values stay data, the gateway's fields always win."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.objects.errors import ForbiddenKernelRequest, InvalidKernelRequest, TemplateError
from gateway.objects.labels import is_label_key, is_label_value
from gateway.objects.names import is_dns1123_label, kernel_resource_name
from gateway.objects.namespace import kernel_namespace, kernel_role_binding
from gateway.objects.pod import kernel_objects, kernel_pod, owned_by
from gateway.objects.template import parse_template

SEED_TEMPLATE = parse_template((Path(__file__).parent / "data" / "kernel-pod.yaml").read_text())
KERNEL_ID = "5e755458-a114-4215-96b7-bcb016fc7b62"
HOSTILE_PIECES = ["\n", ": ", "{", "]", "$other", "${kernel_id}", "$(PUBLIC_KEY)", "$$", "\u2028", "&a", "*a", "#", "'"]

hostile_text = st.one_of(
    st.lists(st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(max_size=4)), max_size=10).map("".join),
    st.just("y" * 5000),
).map(lambda text: text.replace("\x00", ""))
# Names a client may send, some of them the template's or the gateway's own.
env_names = st.one_of(
    st.from_regex(r"KERNEL_[A-Z][A-Z_]{0,8}", fullmatch=True).filter(
        lambda name: not name.startswith(("KERNEL_CPUS", "KERNEL_MEMORY", "KERNEL_GPUS", "KERNEL_UID", "KERNEL_GID"))
    ),
    st.sampled_from(["KERNEL_LANGUAGE", "KERNEL_CONNECTION_FILENAME", "KERNEL_ID", "KERNEL_USERNAME", "PUBLIC_KEY"]),
)
usernames = st.one_of(st.text(max_size=200), hostile_text)

LAUNCHER_ENV = {"RESPONSE_ADDRESS": "10.1.2.3:8877", "PUBLIC_KEY": "MIGfMA0GCSqGSIb3", "PORT_RANGE": "0..0"}


def build(**overrides):
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


def unescape(value: str) -> str:
    """What the kubelet hands the container for an env value without references: ``$$`` read as ``$``."""
    return value.replace("$$", "$")


def scalars(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from scalars(value, (*path, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from scalars(item, (*path, index))
    else:
        yield path, node


def expected_seed_pod(*, username, env, response_address, connection_filename, language, mode, image):
    """The seed template's pod as the gateway must complete it, written out field by field."""
    name = kernel_resource_name(username, KERNEL_ID)
    namespace = "ns-1"
    identity = {
        "KERNEL_ID": KERNEL_ID,
        "KERNEL_USERNAME": username,
        "KERNEL_NAMESPACE": namespace,
        "KERNEL_SERVICE_ACCOUNT_NAME": "kernel-sa",
        "KERNEL_UID": "1000",
        "KERNEL_GID": "100",
    }
    overrides = {**env, **identity, **LAUNCHER_ENV}
    template_env = [
        ("EG_RESPONSE_ADDRESS", response_address),
        ("KERNEL_CONNECTION_FILENAME", connection_filename),
        ("KERNEL_LANGUAGE", language),
        ("SPARK_CONTEXT_INITIALIZATION_MODE", mode),
    ]
    container_env = [
        {"name": key, "value": overrides[key].replace("$", "$$") if key in overrides else value}
        for key, value in template_env
    ]
    seen = {key for key, _ in template_env}
    container_env += [{"name": k, "value": v.replace("$", "$$")} for k, v in overrides.items() if k not in seen]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"kernel_id": KERNEL_ID, "app": "enterprise-gateway", "component": "kernel"},
            "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
        },
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": "kernel-sa",
            "containers": [
                {
                    "env": container_env,
                    "image": image,
                    "name": name,
                    "command": ["/etc/bootstrap-kernel.sh"],
                }
            ],
            "securityContext": {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100, "runAsNonRoot": True},
        },
    }


@settings(max_examples=75)
@given(
    username=usernames,
    env=st.dictionaries(env_names, hostile_text, max_size=6),
    response_address=hostile_text,
    connection_filename=hostile_text,
    language=hostile_text,
    mode=hostile_text,
    image=hostile_text.filter(bool),
)
def test_no_client_value_escapes_its_field(username, env, response_address, connection_filename, language, mode, image):
    pod = build(
        username=username,
        namespace="ns-1",
        service_account="kernel-sa",
        env=env,
        response_address=response_address,
        connection_filename=connection_filename,
        language=language,
        spark_context_initialization_mode=mode,
        image=image,
    ).pod
    expected = expected_seed_pod(
        username=username, env=env, response_address=response_address,
        connection_filename=connection_filename, language=language, mode=mode, image=image,
    )
    assert pod == expected
    assert json.loads(json.dumps(pod)) == pod
    for path, value in scalars(pod):
        assert isinstance(value, (str, int, bool)), path


def marker(tag: object) -> str:
    """Text no generated value can contain by chance, to find copies of a value in the pod."""
    return f"@@{tag}-7c3e91d04b@@"


@settings(max_examples=75)
@given(username=usernames, env=st.dictionaries(env_names, hostile_text, max_size=6))
def test_each_client_value_appears_once_as_its_own_env_value(username, env):
    # Mark every value so that any copy of it, anywhere in the pod, can be found.
    marked = {key: f"{marker(index)}{value}" for index, (key, value) in enumerate(env.items())}
    marked_username = f"{marker('user')}{username}"
    pod = build(username=marked_username, env=marked).pod
    gateway_owned = {"KERNEL_ID", "KERNEL_USERNAME", "PUBLIC_KEY"}
    for index, key in enumerate(marked):
        places = [path for path, value in scalars(pod) if isinstance(value, str) and marker(index) in value]
        if key in gateway_owned:
            assert places == []
        else:
            (path,) = places
            entry = pod["spec"]["containers"][0]["env"][path[4]]
            assert path[-1] == "value" and entry["name"] == key and unescape(entry["value"]) == marked[key]
    places = [path for path, value in scalars(pod) if isinstance(value, str) and marker("user") in value]
    (path,) = places
    assert pod["spec"]["containers"][0]["env"][path[4]] == {
        "name": "KERNEL_USERNAME",
        "value": marked_username.replace("$", "$$"),
    }


def test_escaped_env_values_reach_the_container_unchanged():
    from fakes.node.podenv import expand  # the simulated kubelet's $(VAR) expansion

    value = "a$(PUBLIC_KEY)b$$c$"
    pod = build(env={"KERNEL_EXTRA": value}).pod
    env = {entry["name"]: entry["value"] for entry in pod["spec"]["containers"][0]["env"]}
    assert expand(env["KERNEL_EXTRA"], env.get) == value


@settings(max_examples=50)
@given(username=usernames, env=st.dictionaries(env_names, hostile_text, max_size=4))
def test_builders_never_modify_their_inputs(username, env):
    template = copy.deepcopy(SEED_TEMPLATE)
    launcher = dict(LAUNCHER_ENV)
    before = copy.deepcopy((template, env, launcher))
    objects = kernel_objects(
        template, kernel_id=KERNEL_ID, username=username, namespace="ns", service_account="default",
        image="img", env=env, launcher_env=launcher,
    )
    assert (template, env, launcher) == before
    objects.pod["spec"]["containers"][0]["env"].clear()
    objects.pod["metadata"]["labels"].clear()
    assert (template, env, launcher) == before


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


@settings(max_examples=75)
@given(username=usernames, team=hostile_text)
def test_labels_and_names_stay_valid_whatever_the_template_substitutes(username, team):
    objects = kernel_objects(
        LABELLED_TEMPLATE, kernel_id=KERNEL_ID, username=username, namespace="ns", service_account="default",
        image="elyra/kernel-py:dev", env={"KERNEL_TEAM": team},
    )
    for obj in (objects.pod, *objects.companions):
        meta = obj["metadata"]
        assert meta["namespace"] == "ns"
        assert all(is_label_key(k) and is_label_value(v) for k, v in meta["labels"].items())
        assert {"app": "enterprise-gateway", "component": "kernel", "kernel_id": KERNEL_ID}.items() <= meta[
            "labels"
        ].items()
    service, config_map = objects.companions
    assert is_dns1123_label(service["metadata"]["name"]) and service["metadata"]["name"][0].isalpha()
    assert config_map["data"] == {"user": username}
    assert objects.pod["metadata"]["annotations"] == {
        "owner": username, "port": "8877", "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
    }


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


# --------------------------------------------------------------------------- resources


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


# --------------------------------------------------------------------------- identity


def test_the_kernel_runs_as_kernel_uid_and_gid():
    pod = build(env={"KERNEL_UID": "1234", "KERNEL_GID": "1235"}).pod
    assert pod["spec"]["securityContext"] == {
        "runAsUser": 1234, "runAsGroup": 1235, "fsGroup": 1235, "runAsNonRoot": True,
    }
    env = {entry["name"]: entry["value"] for entry in pod["spec"]["containers"][0]["env"]}
    assert (env["KERNEL_UID"], env["KERNEL_GID"]) == ("1234", "1235")


@pytest.mark.parametrize("variable", ["KERNEL_UID", "KERNEL_GID"])
def test_root_is_refused_by_default_with_403(variable):
    with pytest.raises(ForbiddenKernelRequest, match=variable) as raised:
        build(env={variable: "0"})
    assert raised.value.status == 403


def test_the_caller_decides_which_ids_are_prohibited():
    pod = build(env={"KERNEL_UID": "0"}, prohibited_uids=()).pod
    assert pod["spec"]["securityContext"]["runAsUser"] == 0
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is False
    with pytest.raises(ForbiddenKernelRequest):
        build(env={"KERNEL_UID": "1000"}, prohibited_uids={0, 1000})


@pytest.mark.parametrize("value", ["-1", "1.5", "root", "99999999999", "2147483648", " 1"])
def test_malformed_ids_are_client_errors(value):
    with pytest.raises(InvalidKernelRequest, match="KERNEL_UID"):
        build(env={"KERNEL_UID": value})


@pytest.mark.parametrize(
    "env", [{"KERNEL_X": 3}, {"KERNEL X": "v"}, {"": "v"}, {"KERNEL_X": "a\x00b"}, {"1KERNEL": "v"}]
)
def test_env_that_cannot_be_a_process_environment_is_a_client_error(env):
    with pytest.raises(InvalidKernelRequest):
        build(env=env)


def test_launcher_env_may_not_contradict_the_kernel_identity():
    with pytest.raises(ValueError, match="KERNEL_ID"):
        build(launcher_env={"KERNEL_ID": "another"})


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


# --------------------------------------------------------------------------- owner references, namespace


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

