"""Client values in the kernel pod built from the seed's template stay data, whatever text they hold.

Hypothesis feeds usernames, env values and kernel settings full of YAML and
``$`` syntax: each lands in its own field, once, reaching the container
unchanged; the builders never modify their inputs; labels and names stay
valid whatever a template substitutes into them.
"""

from __future__ import annotations

import copy
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.objects.labels import is_label_key, is_label_value
from gateway.objects.names import is_dns1123_label, kernel_resource_name
from gateway.objects.pod import kernel_objects
from tests.kernelpods import KERNEL_ID, LABELLED_TEMPLATE, LAUNCHER_ENV, SEED_TEMPLATE, build

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
