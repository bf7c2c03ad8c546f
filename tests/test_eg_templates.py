"""Enterprise Gateway 3.3's kernelspecs as they are: their ``kernel-pod.yaml.j2`` makes the kernel's pod.

EG's own kernelspec files are downloaded at test time (``tests/egkernelspecs.py``).  Here: how a
kernelspec's template is found, the variables an EG image's bootstrap reads under EG's names, the
values EG's template gets (after the gateway's own checks, ``KERNEL_VOLUMES`` among them), the
pod the whole build makes from hostile values (valid for the API server, every value in its
field), and EG's ``python_kubernetes`` kernelspec launching a kernel on the simulated cluster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from gateway.errors import InvalidKernelRequest
from gateway.kernels.env import kernel_environment
from gateway.kernels.settings import KernelSettings
from gateway.objects.egtemplate import eg_pod_env, eg_template_values, parse_volume_list
from gateway.objects.pod import kernel_objects
from gateway.provisioner import LaunchRequest, kernel_spec_info
from gateway.provisioner.errors import InvalidLaunch
from gateway.provisioner.model import Placement
from gateway.provisioner.podtemplate import template_objects
from gateway.provisioner.spec import JINJA_TEMPLATE_PATH, TEMPLATE_PATH, read_pod_template
from tests.egkernelspecs import EG_VERSION, eg_kernelspec
from tests.provisionerharness import (
    Env,
    assert_nothing_left,
    env_fixture,  # noqa: F401 (the ``env`` fixture, which pytest finds by name)
)
from tests.test_objects_jinja import ADVISORY_PAYLOADS
from tests.test_provisioner_lifecycle import container_env, run

KERNEL_ID = "5e755458-a114-4215-96b7-bcb016fc7b62"
KUBERNETES_VERSION = "1.32"
EG_IMAGE = f"elyra/kernel-py:{EG_VERSION}"


def pod_for(spec_dir: Path, *, username: str = "alice", env: dict[str, str] | None = None) -> dict[str, Any]:
    """The kernel pod the provisioner builds from the kernelspec in ``spec_dir``, as its ``_build`` composes it."""
    spec = kernel_spec_info(spec_dir.name, spec_dir)
    request = LaunchRequest(kernel_id=KERNEL_ID, username=username, spec=spec,
                            env={"KERNEL_USERNAME": username, "KERNEL_ID": KERNEL_ID, **(env or {})})
    placement = Placement("team", "default", owns_namespace=False, pod_name=f"kernel-{KERNEL_ID}")
    launcher_env = {"RESPONSE_ADDRESS": "10.1.2.3:8877", "PUBLIC_KEY": "MIIBIjANBgkq", "KERNEL_LANGUAGE": spec.language,
                    **eg_pod_env(kernel_name=spec.name, pod_name=placement.pod_name, image=spec.image,
                                 spark_context_mode=spec.spark_context_mode, port_range=None)}
    template = template_objects(read_pod_template(spec_dir), request, placement, image=spec.image,
                                launcher_env=launcher_env)
    return kernel_objects(template, kernel_id=KERNEL_ID, username=username, namespace=placement.namespace,
                          service_account=placement.service_account, image=spec.image, env=request.env,
                          launcher_env=launcher_env, language=spec.language, name=placement.pod_name).pod


# --------------------------------------------------------------------------- the kernelspec and its template


def test_eg_python_kubernetes_kernelspec_reads_as_eg_builds_it(tmp_path: Path) -> None:
    folder = eg_kernelspec("python_kubernetes", tmp_path)
    info = kernel_spec_info("python_kubernetes", folder)

    assert (info.language, info.image, info.spark_context_mode) == ("python", EG_IMAGE, "none")
    template = read_pod_template(folder)
    assert template.is_jinja and template.path == JINJA_TEMPLATE_PATH and "{{" in template.text


def test_eg_spark_kernelspecs_say_their_spark_mode_and_a_kernel_class_is_read_from_argv(tmp_path: Path) -> None:
    folder = eg_kernelspec("spark_python_kubernetes", tmp_path)
    assert kernel_spec_info(folder.name, folder).spark_context_mode == "lazy"

    kernel_json = json.loads((folder / "kernel.json").read_text())
    kernel_json["argv"] += ["--kernel-class-name", "my.Kernel", "--spark-context-initialization-mode=eager"]
    info = kernel_spec_info(folder.name, folder, kernel_json)
    assert (info.kernel_class_name, info.spark_context_mode) == ("my.Kernel", "lazy")


def test_kernel_pod_yaml_wins_over_a_jinja_template_and_a_folder_without_either_says_so(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / JINJA_TEMPLATE_PATH).write_text("j2")
    assert read_pod_template(tmp_path).text == "j2"
    (tmp_path / TEMPLATE_PATH).write_text("yaml")
    assert (read_pod_template(tmp_path).text, read_pod_template(tmp_path).is_jinja) == ("yaml", False)

    with pytest.raises(FileNotFoundError):
        read_pod_template(tmp_path / "nothing")


# --------------------------------------------------------------------------- EG's variables


def test_the_pod_gets_what_egs_bootstrap_and_launchers_read_with_egs_defaults() -> None:
    env = eg_pod_env(kernel_name="spark_python_kubernetes", pod_name="alice-1", image=EG_IMAGE,
                     spark_context_mode="lazy", port_range=None)

    assert env == {"KERNEL_NAME": "spark_python_kubernetes", "KERNEL_POD_NAME": "alice-1", "KERNEL_IMAGE": EG_IMAGE,
                   "KERNEL_SPARK_CONTEXT_INIT_MODE": "lazy", "PORT_RANGE": "0..0", "EG_MIN_PORT_RANGE_SIZE": "1000",
                   "EG_MAX_PORT_RANGE_RETRIES": "5"}
    ranged = eg_pod_env(kernel_name="k", pod_name="p", image="i", spark_context_mode="", port_range="40000..40100",
                        kernel_class_name="my.Kernel")
    assert ranged["PORT_RANGE"] == "40000..40100" and ranged["KERNEL_SPARK_CONTEXT_INIT_MODE"] == "none"
    assert ranged["EG_MIN_PORT_RANGE_SIZE"] == "100", "EG's launchers must accept the range the gateway was given"
    assert ranged["KERNEL_CLASS_NAME"] == "my.Kernel"


def test_template_values_are_the_gateways_facts_over_the_clients_kernel_variables() -> None:
    values = eg_template_values(
        {"KERNEL_POD_NAME": "{{ kernel_username }}-x", "KERNEL_NAMESPACE": "other", "KERNEL_EXTRA": "e",
         "KERNEL_CPUS": "", "KERNEL_MEMORY": "1Gi", "EG_OTHER": "no", "KERNEL_UID": "0042"},
        kernel_id=KERNEL_ID, username="alice", namespace="team", service_account="sa", pod_name="alice-1", image="i")

    assert values["kernel_pod_name"] == "alice-1" and values["kernel_namespace"] == "team"
    assert values["kernel_extra"] == "e" and values["kernel_memory"] == "1Gi" and "kernel_cpus" not in values
    assert (values["kernel_uid"], values["kernel_gid"]) == ("42", "100") and "eg_other" not in values
    with pytest.raises(InvalidKernelRequest, match="KERNEL_GID"):
        eg_template_values({"KERNEL_GID": "-1"}, kernel_id=KERNEL_ID, username="a", namespace="n",
                           service_account="s", pod_name="p", image="i")


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("KERNEL_VOLUMES", "[{name: data, persistentVolumeClaim: {claimName: team}}]",
     [{"name": "data", "persistentVolumeClaim": {"claimName": "team"}}]),
    ("KERNEL_VOLUMES", '[{"name": "scratch", "emptyDir": {}}, {name: nb, configMap: {name: notebooks}}]',
     [{"name": "scratch", "emptyDir": {}}, {"name": "nb", "configMap": {"name": "notebooks"}}]),
    ("KERNEL_VOLUME_MOUNTS", "[{name: data, mountPath: /data, readOnly: true}]",
     [{"name": "data", "mountPath": "/data", "readOnly": True}]),
    ("KERNEL_VOLUMES", "  ", []),
])
def test_volumes_are_parsed_as_eg_parses_them(name: str, text: str, expected: list[dict[str, Any]]) -> None:
    assert parse_volume_list(name, text) == expected


@pytest.mark.parametrize(("name", "text", "words"), [
    ("KERNEL_VOLUMES", "[{name: root, hostPath: {path: /SECRET}}]", "one of persistentVolumeClaim"),
    ("KERNEL_VOLUMES", "[{name: keys, secret: {secretName: SECRET}}]", "one of persistentVolumeClaim"),
    ("KERNEL_VOLUMES", "[{name: two, emptyDir: {}, configMap: {name: SECRET}}]", "one of persistentVolumeClaim"),
    ("KERNEL_VOLUMES", "[{name: Not_A_Name, emptyDir: {}}]", "needs a name"),
    ("KERNEL_VOLUMES", "{name: data}", "list of mappings"),
    ("KERNEL_VOLUMES", "[SECRET]", "list of mappings"),
    ("KERNEL_VOLUMES", "[{name: d, emptyDir: {}}", "list of mappings"),
    ("KERNEL_VOLUMES", "[{name: d, emptyDir: {x: 2001-01-01}}]", "list of mappings"),
    ("KERNEL_VOLUMES", "[{name: d, emptyDir: " + "{a: " * 10 + "SECRET" + "}" * 11 + "]", "list of mappings"),
    ("KERNEL_VOLUMES", "[" * 2000 + "]" * 2000, "list of mappings"),
    ("KERNEL_VOLUME_MOUNTS", "[{name: d, mountPath: /d, mountPropagation: Bidirectional}]", "may only say"),
    ("KERNEL_VOLUME_MOUNTS", "[{name: d, mountPath: /d, readOnly: SECRET}]", "readOnly must be a boolean"),
    ("KERNEL_VOLUME_MOUNTS", "[{name: d}]", "needs a name and a mountPath"),
])
def test_volumes_the_gateway_refuses_are_bad_requests_naming_the_variable_not_the_value(
    name: str, text: str, words: str
) -> None:
    with pytest.raises(InvalidKernelRequest, match=words) as caught:
        parse_volume_list(name, text)
    assert name in str(caught.value) and "SECRET" not in str(caught.value)

    with pytest.raises(InvalidKernelRequest, match=words):  # refused when the request arrives
        kernel_environment({name: text}, spec_env={}, settings=KernelSettings(), username_fallback="alice")


# --------------------------------------------------------------------------- the whole build


def test_eg_kernelspecs_pod_is_valid_runs_the_images_own_command_and_carries_egs_variables(tmp_path: Path) -> None:
    folder = eg_kernelspec("python_kubernetes", tmp_path)
    pod = pod_for(folder, env={
        "KERNEL_CPUS": "500m", "KERNEL_MEMORY_LIMIT": "1Gi", "KERNEL_UID": "1001",
        "KERNEL_VOLUMES": "[{name: data, persistentVolumeClaim: {claimName: team}}]",
        "KERNEL_VOLUME_MOUNTS": "[{name: data, mountPath: /home/jovyan/data}]",
    })

    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    [container] = pod["spec"]["containers"]
    assert "command" not in container and "args" not in container and container["image"] == EG_IMAGE
    assert container["resources"] == {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/home/jovyan/data"}]
    assert pod["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "team"}}]
    assert pod["spec"]["securityContext"]["runAsUser"] == 1001
    env = {entry["name"]: entry["value"] for entry in container["env"]}
    assert env.items() >= {"KERNEL_ID": KERNEL_ID, "KERNEL_USERNAME": "alice", "KERNEL_LANGUAGE": "python",
                           "RESPONSE_ADDRESS": "10.1.2.3:8877", "PUBLIC_KEY": "MIIBIjANBgkq",
                           "KERNEL_SPARK_CONTEXT_INIT_MODE": "none", "KERNEL_NAME": "python_kubernetes",
                           "PORT_RANGE": "0..0", "KERNEL_POD_NAME": f"kernel-{KERNEL_ID}"}.items()


@pytest.mark.parametrize("payload", ADVISORY_PAYLOADS)
def test_the_advisories_payloads_make_a_valid_pod_holding_them_as_values(tmp_path: Path, payload: str) -> None:
    folder = eg_kernelspec("python_kubernetes", tmp_path)
    pod = pod_for(folder, username=payload, env={
        "KERNEL_POD_NAME": payload, "KERNEL_WORKING_DIR": payload, "KERNEL_NAMESPACE": payload, "KERNEL_EXTRA": payload,
    })

    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    assert pod["metadata"]["name"] == f"kernel-{KERNEL_ID}" and pod["metadata"]["namespace"] == "team"
    [container] = pod["spec"]["containers"]
    assert container["workingDir"] == payload
    env = {entry["name"]: entry["value"] for entry in container["env"]}
    assert env["KERNEL_EXTRA"] == payload.replace("$", "$$") and env["KERNEL_POD_NAME"] == f"kernel-{KERNEL_ID}"
    assert set(pod["spec"]) == {"restartPolicy", "serviceAccountName", "securityContext", "containers"}


# --------------------------------------------------------------------------- on the simulated cluster


@pytest.mark.slow
async def test_eg_python_kubernetes_kernelspec_runs_a_kernel_on_the_simulated_cluster(env: Env, tmp_path: Path) -> None:
    folder = eg_kernelspec("python_kubernetes", tmp_path)
    request = env.request(spec=kernel_spec_info(folder.name, folder), KERNEL_CPUS="100m")

    running = await env.provisioner.launch(request)
    try:
        pod = await env.admin.get("pods", running.placement.pod_name, namespace=running.placement.namespace)
        assert pod["metadata"]["labels"]["source"] == "kernel-pod.yaml", "the pod comes from EG's template"
        assert "command" not in pod["spec"]["containers"][0]
        variables = container_env(pod)
        assert variables["KERNEL_SPARK_CONTEXT_INIT_MODE"] == "none" and variables["KERNEL_NAME"] == "python_kubernetes"
        assert variables["PUBLIC_KEY"] == env.listener.legacy_public_key and variables["PORT_RANGE"] == "0..0"
        assert running.connection.key not in json.dumps(pod)
        assert await run(running, "1 + 1") == ["2"]
    finally:
        await env.provisioner.stop(running, grace_seconds=1)
        await env.provisioner.release(running.placement)
    await assert_nothing_left(env.admin, request.kernel_id)


async def test_a_mount_of_a_volume_the_pod_lacks_is_the_clients_400_and_leaves_nothing(env: Env,
                                                                                         tmp_path: Path) -> None:
    """Each mount names a volume on its own: one naming no volume of the pod passes the gateway's checks and the
    API server refuses the pod (``ValidateVolumeMounts``), which the client hears as a 400 naming the field."""
    folder = eg_kernelspec("python_kubernetes", tmp_path)
    request = env.request(spec=kernel_spec_info(folder.name, folder), KERNEL_VOLUMES="[{name: data, emptyDir: {}}]",
                          KERNEL_VOLUME_MOUNTS="[{name: other, mountPath: /data}]")
    with pytest.raises(InvalidLaunch) as refused:
        await env.provisioner.launch(request)
    assert refused.value.status == 400
    assert 'volumeMounts[0].name: Not found: "other"' in str(refused.value)
    await assert_nothing_left(env.admin, request.kernel_id)
