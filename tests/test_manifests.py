"""What operators apply: ``manifests/`` is valid Kubernetes and deploys the gateway the seed describes.

Every object of ``manifests/enterprise-gateway.yaml`` and of every kustomize
rendering (the base and each overlay, rendered by ``kubectl kustomize``) is
validated offline, strictly (no unknown fields), against the OpenAPI schemas of
a current Kubernetes release.  The single file and the base hold the same
objects, and the names, labels, env and settings Enterprise Gateway's
deployment documents are there.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # slow to import: once per module
import pytest
import yaml

from fakes.manifests import MANIFEST, manifest_objects
from gateway.cli import build_parser
from gateway.config import GatewayConfig
from tests import kubectlclient

MANIFESTS = MANIFEST.parent
OVERLAYS = sorted(p.name for p in (MANIFESTS / "overlays").iterdir() if (p / "kustomization.yaml").exists())
COMPONENTS = sorted(p.name for p in (MANIFESTS / "components").iterdir() if (p / "kustomization.yaml").exists())
SCHEMA_VERSION = kubernetes_validate.latest_version()
NAMESPACE = "enterprise-gateway"
SEED_ENV = {
    "EG_NAMESPACE": "enterprise-gateway",
    "EG_KERNEL_CLUSTER_ROLE": "kernel-controller",
    "EG_SHARED_NAMESPACE": "False",
    "EG_TUNNELING_ENABLED": "False",
    "EG_CULL_IDLE_TIMEOUT": "600",
    "EG_LOG_LEVEL": "DEBUG",
    "EG_KERNEL_LAUNCH_TIMEOUT": "60",
    "EG_KERNEL_WHITELIST": "['r_kubernetes','python_kubernetes','python_tf_kubernetes','scala_kubernetes',"
    "'spark_r_kubernetes','spark_python_kubernetes','spark_scala_kubernetes']",
}
needs_kubectl = kubectlclient.needs(kubectlclient.KUSTOMIZE_COMPONENTS, "rendering the overlays' components")

Key = tuple[str, str, str]


def key(obj: dict[str, Any]) -> Key:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def by_key(objects: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    keyed = {key(obj): obj for obj in objects}
    assert len(keyed) == len(objects), "an object appears twice"
    return keyed


def kustomize(target: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize target`` as objects."""
    done = subprocess.run(["kubectl", "kustomize", str(target)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"kubectl kustomize {target} failed: {done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every kustomization rendered once: ``base`` and each overlay by name."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    out = {"base": kustomize(MANIFESTS / "base")}
    for overlay in OVERLAYS:
        out[overlay] = kustomize(MANIFESTS / "overlays" / overlay)
    return out


def validate_all(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{key(obj)} is not valid Kubernetes {SCHEMA_VERSION}: {exc.message} at "
                                 f"{'/'.join(str(p) for p in exc.path)}") from None


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    names = [entry["name"] for entry in container["env"]]
    assert len(names) == len(set(names)), f"an env variable is set twice: {names}"
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in container["env"]}


def the(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


# --------------------------------------------------------------------------- validity


def test_single_file_validates_strictly_against_current_schemas():
    objects = manifest_objects()
    assert [o["kind"] for o in objects] == [
        "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ClusterRole", "Role", "RoleBinding",
        "Service", "Deployment", "PodDisruptionBudget",
    ]
    validate_all(objects)


def test_the_validation_rejects_what_the_api_server_would():
    """The schema check is strict: a misspelt field or a wrong type is caught, so passing means something."""
    deployment = the(manifest_objects(), "Deployment", "enterprise-gateway")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(AssertionError, match="not valid"):
        validate_all([deployment])
    service = the(manifest_objects(), "Service", "enterprise-gateway")
    service["spec"]["ports"][0]["port"] = "8888"
    with pytest.raises(AssertionError, match="not valid"):
        validate_all([service])


@needs_kubectl
@pytest.mark.parametrize("target", ["base", *OVERLAYS])
def test_every_kustomization_renders_and_validates(rendered, target):
    validate_all(rendered[target])


@needs_kubectl
def test_the_single_file_is_the_kustomize_base(rendered):
    assert by_key(manifest_objects()) == by_key(rendered["base"])


def test_the_single_file_is_written_from_the_base(tmp_path):
    """``manifests/join-base.sh`` reproduces ``enterprise-gateway.yaml`` exactly: edits go to ``base/``."""
    subprocess.run(["sh", str(MANIFESTS / "join-base.sh"), str(tmp_path / "joined.yaml")], check=True, timeout=30)
    assert (tmp_path / "joined.yaml").read_text() == MANIFEST.read_text(), "run: sh manifests/join-base.sh"


def test_every_component_has_an_overlay():
    assert COMPONENTS == OVERLAYS == ["external-ips", "kernel-namespace", "kernelspecs-pv", "shared-namespace"]
    for name in OVERLAYS:
        kustomization = yaml.safe_load((MANIFESTS / "overlays" / name / "kustomization.yaml").read_text())
        assert kustomization["resources"] == ["../../base"]
        assert kustomization["components"] == [f"../../components/{name}"]


# --------------------------------------------------------------------------- what the seed documents


def test_every_object_is_labelled_for_kubectl_selection():
    for obj in manifest_objects():
        labels = obj["metadata"].get("labels") or {}
        assert labels.get("app") == "enterprise-gateway", key(obj)
        expected = "kernel" if obj["metadata"]["name"] == "kernel-controller" else "enterprise-gateway"
        assert labels.get("component") == expected, key(obj)


def test_current_api_versions():
    versions = {o["kind"]: o["apiVersion"] for o in manifest_objects()}
    assert versions == {
        "Namespace": "v1", "ServiceAccount": "v1", "Service": "v1", "Deployment": "apps/v1",
        "ClusterRole": "rbac.authorization.k8s.io/v1", "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
        "Role": "rbac.authorization.k8s.io/v1", "RoleBinding": "rbac.authorization.k8s.io/v1",
        "PodDisruptionBudget": "policy/v1",
    }


def test_gateway_account_is_bound_to_its_cluster_role():
    objects = manifest_objects()
    account = the(objects, "ServiceAccount", "enterprise-gateway-sa")
    assert account["metadata"]["namespace"] == NAMESPACE
    binding = the(objects, "ClusterRoleBinding", "enterprise-gateway-controller")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "enterprise-gateway-sa", "namespace": NAMESPACE}]
    assert binding["roleRef"] == {
        "kind": "ClusterRole", "name": "enterprise-gateway-controller", "apiGroup": "rbac.authorization.k8s.io"
    }
    the(objects, "ClusterRole", "enterprise-gateway-controller")
    deployment = the(objects, "Deployment", "enterprise-gateway")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "enterprise-gateway-sa"


def test_gateway_may_bind_exactly_the_kernel_cluster_role_it_is_configured_with():
    objects = manifest_objects()
    rules = the(objects, "ClusterRole", "enterprise-gateway-controller")["rules"]
    binds = [r for r in rules if "bind" in r["verbs"]]
    kernel_role = env_of(the(objects, "Deployment", "enterprise-gateway"))["EG_KERNEL_CLUSTER_ROLE"]
    assert binds == [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                      "verbs": ["bind"], "resourceNames": [kernel_role]}]
    the(objects, "ClusterRole", kernel_role)
    assert not any("*" in r["verbs"] or "*" in r["resources"] for r in rules), "wildcards are not least privilege"


def test_kernel_cluster_role_grants_what_the_seed_does_and_spark_drivers_need():
    rules = the(manifest_objects(), "ClusterRole", "kernel-controller")["rules"]
    granted = {(res, verb) for r in rules for res in r["resources"] for verb in r["verbs"]}
    assert all(r["apiGroups"] == [""] for r in rules)
    seed = {("pods", v) for v in ("get", "watch", "list", "create", "delete")}
    spark = {("configmaps", "list"), ("configmaps", "create"), ("services", "list"),
             ("persistentvolumeclaims", "list")}
    assert granted == seed | spark


def test_service_is_a_node_port_on_8888_spreading_clients_over_every_gateway_pod():
    objects = manifest_objects()
    service = the(objects, "Service", "enterprise-gateway")
    spec = service["spec"]
    assert service["metadata"]["namespace"] == NAMESPACE
    # Any replica serves any kernel: no affinity (the default, None, spreads connections).
    assert spec["type"] == "NodePort" and spec.get("sessionAffinity", "None") == "None"
    assert [(p["name"], p["port"], p["targetPort"]) for p in spec["ports"]] == [("http", 8888, "http")]
    pod_labels = the(objects, "Deployment", "enterprise-gateway")["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"] == {"gateway-selector": "enterprise-gateway"}
    assert spec["selector"].items() <= pod_labels.items()
    assert "externalIPs" not in spec
    assert "# externalIPs:" in (MANIFESTS / "enterprise-gateway.yaml").read_text(), "operators look for it"


def test_deployment_runs_two_gateways_with_the_seeds_settings():
    deployment = the(manifest_objects(), "Deployment", "enterprise-gateway")
    spec = deployment["spec"]
    assert deployment["metadata"]["namespace"] == NAMESPACE
    assert spec["replicas"] == 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    # A rolling update never takes the last ready gateway away.
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    container = spec["template"]["spec"]["containers"][0]
    assert container["name"] == "enterprise-gateway"
    assert container["image"].startswith("kernelgate/") and not container["image"].startswith("elyra/")
    assert container["command"] + container["args"][:3] == ["kernelgate", "serve", "--ip", "0.0.0.0"]
    env = env_of(deployment)
    assert {name: env.get(name) for name in SEED_ENV} == SEED_ENV
    assert env["EG_RESPONSE_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["EG_RESPONSE_PORT"] == "8877"
    assert {(p["name"], p["containerPort"]) for p in container["ports"]} == {("http", 8888), ("response", 8877)}


def test_a_disruption_budget_keeps_one_gateway_serving():
    objects = manifest_objects()
    budget = the(objects, "PodDisruptionBudget", "enterprise-gateway")
    pod_labels = the(objects, "Deployment", "enterprise-gateway")["spec"]["template"]["metadata"]["labels"]
    assert budget["metadata"]["namespace"] == NAMESPACE
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_the_gateway_namespace_role_grants_records_lease_and_ledger_there_only():
    objects = manifest_objects()
    role = the(objects, "Role", "enterprise-gateway")
    binding = the(objects, "RoleBinding", "enterprise-gateway")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NAMESPACE
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert granted == {
        *(("", "secrets", v) for v in ("list", "update", "watch")),
        *(("coordination.k8s.io", "leases", v) for v in ("create", "get", "update")),
        ("", "configmaps", "update"),
    }
    assert binding["roleRef"] == {"kind": "Role", "name": "enterprise-gateway", "apiGroup": "rbac.authorization.k8s.io"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "enterprise-gateway-sa", "namespace": NAMESPACE}]


def test_deployment_is_probed_bounded_and_unprivileged():
    pod = the(manifest_objects(), "Deployment", "enterprise-gateway")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    writable = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in writable


def test_kernelgate_accepts_the_deployments_command_and_environment(monkeypatch):
    """What the pod runs parses as ``kernelgate serve`` and the env as the gateway's settings (no ConfigError)."""
    container = the(manifest_objects(), "Deployment", "enterprise-gateway")["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(container["args"])
    assert (args.command, args.ip, args.port) == ("serve", "0.0.0.0", 8888)
    for name, value in env_of(the(manifest_objects(), "Deployment", "enterprise-gateway")).items():
        monkeypatch.setenv(name, value if isinstance(value, str) else "10.244.1.7")  # status.podIP, as the kubelet fills it
    config = GatewayConfig()
    assert config.namespace == "enterprise-gateway" and config.kernel_cluster_role == "kernel-controller"
    assert config.shared_namespace is False and config.tunneling_enabled is False
    assert (config.cull_idle_timeout, config.kernel_launch_timeout, config.log_level) == (600, 60, "DEBUG")
    assert sorted(config.allowed_kernels) == sorted(SEED_ENV["EG_KERNEL_WHITELIST"].strip("[]").replace("'", "").split(","))
    assert (config.response_ip, config.response_port) == ("10.244.1.7", 8877)


# --------------------------------------------------------------------------- overlays


@needs_kubectl
def test_shared_namespace_overlay_only_flips_eg_shared_namespace(rendered):
    base = the(rendered["base"], "Deployment", "enterprise-gateway")
    shared = the(rendered["shared-namespace"], "Deployment", "enterprise-gateway")
    assert env_of(shared) == {**env_of(base), "EG_SHARED_NAMESPACE": "True"}


@needs_kubectl
def test_external_ips_overlay_sets_the_service_external_ips(rendered):
    service = the(rendered["external-ips"], "Service", "enterprise-gateway")
    assert service["spec"]["externalIPs"] == ["192.0.2.10"]
    assert service["spec"]["type"] == "NodePort"


@needs_kubectl
def test_kernelspecs_pv_overlay_mounts_the_claimed_nfs_volume_where_jupyter_finds_kernelspecs(rendered):
    objects = rendered["kernelspecs-pv"]
    volume = the(objects, "PersistentVolume", "kernelspecs-pv")
    claim = the(objects, "PersistentVolumeClaim", "kernelspecs-pvc")
    assert claim["metadata"]["namespace"] == NAMESPACE
    assert volume["spec"]["nfs"]["path"] == "/usr/local/share/jupyter/kernels"
    assert claim["spec"]["selector"]["matchLabels"].items() <= volume["metadata"]["labels"].items()
    assert claim["spec"]["accessModes"] == volume["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert claim["spec"]["storageClassName"] == volume["spec"]["storageClassName"] == ""
    pod = the(objects, "Deployment", "enterprise-gateway")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["kernelspecs"]["persistentVolumeClaim"]["claimName"] == "kernelspecs-pvc"
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["kernelspecs"]["mountPath"] == "/usr/local/share/jupyter/kernels"
    assert mounts["tmp"]["mountPath"] == "/tmp", "the base's mounts are kept"
    args = build_parser().parse_args(pod["containers"][0]["args"])
    assert args.kernelspecs == ["/usr/local/share/jupyter/kernels"], "the volume's kernelspecs come first"


@needs_kubectl
def test_kernel_namespace_overlay_is_the_seeds_kernel_ns_example(rendered):
    objects = rendered["kernel-namespace"]
    the(objects, "Namespace", "kernel-ns")
    account = the(objects, "ServiceAccount", "kernel-sa")
    binding = the(objects, "RoleBinding", "kernel-controller")
    assert account["metadata"]["namespace"] == binding["metadata"]["namespace"] == "kernel-ns"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kernel-sa", "namespace": "kernel-ns"}]
    assert binding["roleRef"] == {"kind": "ClusterRole", "name": "kernel-controller",
                                  "apiGroup": "rbac.authorization.k8s.io"}
    for obj in (account, binding, the(objects, "Namespace", "kernel-ns")):
        assert obj["metadata"]["labels"] == {"app": "enterprise-gateway", "component": "kernel"}
    assert len(objects) == len(rendered["base"]) + 3
