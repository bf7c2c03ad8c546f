"""The kubectl commands Enterprise Gateway's documentation gives operators, run on the simulated cluster.

``kubectl apply -f manifests/enterprise-gateway.yaml`` deploys the gateway;
kernels' objects are the ones the gateway builds (``gateway.objects``): a
kernel with its own namespace and role binding, and one in the gateway's
namespace (``EG_SHARED_NAMESPACE``).  Then the tips: select everything of the
gateway, one kernel, or kernels only, across namespaces; delete a kernel's
namespace; delete the gateway's cluster-wide RBAC by label.  The real kubectl
binary runs as a subprocess with the cluster's kubeconfig.

On a cluster whose node runs the gateway's Deployment, the troubleshooting tips: enter a
gateway pod (``kubectl exec -it <pod> -- /bin/bash``), reach the gateway through its Service
(``kubectl port-forward svc/enterprise-gateway <local>:8888``), and follow a kernel's log
(``kubectl logs -f po/<kernel pod>``) until the kernel is shut down.

Each test runs on a new cluster of each kind ``--cluster`` names: the simulated one (``memory``
or ``apiserver``), and with ``kube`` the real control plane (``e2e.kube``), where its
controllers run the gateway's Deployment, the tips show its ReplicaSet and pods too, and the
troubleshooting tips reach the pods through the node agent's kubelet API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.kube.fixture import require_built
from e2e.kube.launcher import ControlPlane
from fakes.manifests import MANIFEST, manifest_objects
from fakes.serve import SimulatedCluster
from gateway.objects import kernel_namespace, kernel_objects, kernel_resource_name, kernel_role_binding, parse_template
from gateway.provisioner.spec import TEMPLATE_PATH
from tests import kubectlclient
from tests.deployedharness import places
from tests.kubectlclient import KUBECTL_TIMEOUT, Kubectl
from tests.kubectlstreams import forwarding, http_request, in_terminal

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

GATEWAY_NAMESPACE = "enterprise-gateway"
TEMPLATE = parse_template((MANIFEST.parent.parent / "kernelspecs" / "python_kubernetes" / TEMPLATE_PATH).read_text())


@dataclass(frozen=True)
class Kernel:
    id: str
    namespace: str
    pod: str


def kernel_manifest(username: str, *, shared: bool) -> tuple[Kernel, list[dict[str, Any]]]:
    """A kernel's objects as the gateway creates them: in its own namespace (with the role binding) or the shared one."""
    kernel_id = str(uuid.uuid4())
    name = kernel_resource_name(username, kernel_id)
    namespace = GATEWAY_NAMESPACE if shared else name
    objects = kernel_objects(
        TEMPLATE, kernel_id=kernel_id, username=username, namespace=namespace, service_account="default",
        image="kernelgate/kernel-py:dev", env={}, response_address="10.0.0.1:8877", name=name,
    )
    owned = [] if shared else [kernel_namespace(name, kernel_id),
                               kernel_role_binding(name, "kernel-controller", "default", kernel_id)]
    return Kernel(kernel_id, namespace, name), [*owned, objects.pod]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "place" in metafunc.fixturenames:
        metafunc.parametrize("place", places(metafunc.config))


@contextlib.asynccontextmanager
async def new_cluster(place: str, directory: Path, *, runs_pods: bool) -> AsyncIterator[Path]:
    """A new cluster's admin kubeconfig: the simulated one (its node agent and controllers only when
    ``runs_pods``), or a real control plane, which always runs them."""
    if place == "kube":
        require_built()
        plane = ControlPlane()
        await asyncio.to_thread(plane.start)
        try:
            yield plane.admin_kubeconfig
        finally:
            await asyncio.to_thread(plane.stop)
        return
    async with SimulatedCluster(state_dir=directory, node_agent=runs_pods) as c:
        yield c.kubeconfig_path


@pytest.fixture
async def kubectl(place, tmp_path):
    async with new_cluster(place, tmp_path / "state", runs_pods=False) as kubeconfig:
        yield Kubectl(kubeconfig, tmp_path / "cache")


async def workload(kubectl) -> set[tuple[str, str]]:
    """``(namespace, kind/name)`` of what controllers made of the gateway's Deployment, once it is rolled out
    (its ReplicaSet and pods, which the tips list too); nothing where no controllers run."""
    _, out, _ = await kubectl("get", "rs", "-l", "component=enterprise-gateway", "-n", GATEWAY_NAMESPACE, "-o", "name")
    if not out.strip():
        return set()
    await kubectl("rollout", "status", "deployment/enterprise-gateway", "-n", GATEWAY_NAMESPACE, "--timeout=120s")
    _, out, _ = await kubectl("get", "rs,pods", "-l", "component=enterprise-gateway", "-n", GATEWAY_NAMESPACE,
                              "-o", "name")
    return {(GATEWAY_NAMESPACE, name) for name in out.split()}


@pytest.fixture
async def deployed(kubectl) -> tuple[Kernel, Kernel]:
    """The manifests applied, then two kernels: ``alice``'s in its own namespace, ``bob``'s in the gateway's."""
    await kubectl("apply", "-f", str(MANIFEST))
    own, own_objects = kernel_manifest("alice", shared=False)
    shared, shared_objects = kernel_manifest("bob", shared=True)
    documents = {"apiVersion": "v1", "kind": "List", "items": [*own_objects, *shared_objects]}
    await kubectl("create", "-f", "-", stdin=json.dumps(documents))
    return own, shared


def rows(out: str) -> set[tuple[str, str]]:
    """``(namespace, kind/name)`` of each row of ``kubectl get ... --all-namespaces`` (several tables)."""
    found = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] != "NAMESPACE":
            found.add((fields[0], fields[1]))
    return found


async def names(kubectl, *args: str) -> set[tuple[str, str]]:
    _, out, _ = await kubectl("get", *args, "-o", "json")
    return {(item["kind"], item["metadata"]["name"]) for item in json.loads(out)["items"]}


PDB = "poddisruptionbudget.policy/enterprise-gateway"
"""kubectl says "configured" on every apply of a PodDisruptionBudget, on a real server too: its
``spec.selector`` has patch strategy "replace", so the computed patch is never empty
(k8s.io/api/policy/v1 ``PodDisruptionBudgetSpec``)."""


async def test_apply_creates_every_object_then_a_second_apply_changes_nothing(kubectl):
    _, out, _ = await kubectl("apply", "-f", str(MANIFEST))
    expected = [
        "namespace/enterprise-gateway",
        "serviceaccount/enterprise-gateway-sa",
        "clusterrole.rbac.authorization.k8s.io/enterprise-gateway-controller",
        "clusterrolebinding.rbac.authorization.k8s.io/enterprise-gateway-controller",
        "clusterrole.rbac.authorization.k8s.io/kernel-controller",
        "role.rbac.authorization.k8s.io/enterprise-gateway",
        "rolebinding.rbac.authorization.k8s.io/enterprise-gateway",
        "service/enterprise-gateway",
        "deployment.apps/enterprise-gateway",
        PDB,
    ]
    assert out.splitlines() == [f"{name} created" for name in expected]
    _, out, _ = await kubectl("apply", "-f", str(MANIFEST))
    assert out.splitlines() == [f"{name} {'configured' if name == PDB else 'unchanged'}" for name in expected]

    _, out, _ = await kubectl("get", "clusterrole", "enterprise-gateway-controller", "-o", "json")
    stored = json.loads(out)
    manifest_role = next(o for o in manifest_objects() if o["metadata"]["name"] == "enterprise-gateway-controller")
    assert stored["rules"] == manifest_role["rules"]
    _, out, _ = await kubectl("get", "deployment", "enterprise-gateway", "-n", GATEWAY_NAMESPACE, "-o", "json")
    assert json.loads(out)["spec"]["replicas"] == 2


async def test_get_all_by_app_label_across_namespaces_shows_the_gateway_and_every_kernel(kubectl, deployed):
    own, shared = deployed
    gateway_workload = await workload(kubectl)
    _, out, _ = await kubectl("get", "all", "-l", "app=enterprise-gateway", "--all-namespaces")
    assert rows(out) == {
        (GATEWAY_NAMESPACE, "service/enterprise-gateway"),
        (GATEWAY_NAMESPACE, "deployment.apps/enterprise-gateway"),
        (own.namespace, f"pod/{own.pod}"),
        (shared.namespace, f"pod/{shared.pod}"),
    } | gateway_workload
    _, out, err = await kubectl("get", "all", "-l", "app=enterprise-gateway")  # the context's namespace only
    assert out == "" and "No resources found in default namespace" in err


async def test_kernel_id_label_selects_one_kernels_objects(kubectl, deployed):
    own, shared = deployed
    _, out, _ = await kubectl("get", "all", "-l", f"kernel_id={own.id}", "--all-namespaces")
    assert rows(out) == {(own.namespace, f"pod/{own.pod}")}
    assert await names(kubectl, "namespaces,rolebindings,pods", "-l", f"kernel_id={own.id}", "--all-namespaces") == {
        ("Namespace", own.namespace), ("RoleBinding", "kernel-controller"), ("Pod", own.pod)
    }
    _, out, _ = await kubectl("get", "pods", "-l", f"kernel_id={shared.id}", "--namespace", GATEWAY_NAMESPACE)
    assert [line.split()[0] for line in out.splitlines()[1:]] == [shared.pod]


async def test_component_label_tells_kernels_from_the_gateway(kubectl, deployed):
    own, shared = deployed
    _, out, _ = await kubectl("get", "all", "-l", "component=kernel", "--all-namespaces")
    assert rows(out) == {(own.namespace, f"pod/{own.pod}"), (shared.namespace, f"pod/{shared.pod}")}
    gateway_workload = await workload(kubectl)
    _, out, _ = await kubectl("get", "all", "-l", "component=enterprise-gateway", "--all-namespaces")
    assert rows(out) == {(GATEWAY_NAMESPACE, "service/enterprise-gateway"),
                         (GATEWAY_NAMESPACE, "deployment.apps/enterprise-gateway")} | gateway_workload


async def test_deleting_a_kernel_namespace_removes_that_kernel_only(kubectl, deployed):
    own, shared = deployed
    _, out, _ = await kubectl("delete", "ns", own.namespace)
    assert out.strip() == f'namespace "{own.namespace}" deleted'
    code, _, err = await kubectl("get", "ns", own.namespace, check=False)
    assert code != 0 and "NotFound" in err
    _, out, _ = await kubectl("get", "all", "-l", "app=enterprise-gateway", "--all-namespaces")
    assert (shared.namespace, f"pod/{shared.pod}") in rows(out)
    assert not any(namespace == own.namespace for namespace, _ in rows(out))


async def test_deleting_cluster_roles_and_bindings_by_label_removes_exactly_the_gateways(kubectl, deployed):
    before = await names(kubectl, "clusterroles")
    _, out, _ = await kubectl("delete", "clusterrole", "-l", "app=enterprise-gateway")
    assert sorted(out.splitlines()) == [
        'clusterrole.rbac.authorization.k8s.io "enterprise-gateway-controller" deleted',
        'clusterrole.rbac.authorization.k8s.io "kernel-controller" deleted',
    ]
    assert before - await names(kubectl, "clusterroles") == {
        ("ClusterRole", "enterprise-gateway-controller"), ("ClusterRole", "kernel-controller")
    }
    _, out, _ = await kubectl("delete", "clusterrolebinding", "-l", "app=enterprise-gateway")
    assert out.splitlines() == [
        'clusterrolebinding.rbac.authorization.k8s.io "enterprise-gateway-controller" deleted'
    ]
    assert ("ClusterRole", "cluster-admin") in await names(kubectl, "clusterroles"), "others' roles are kept"
    _, out, err = await kubectl("get", "clusterrolebinding", "-l", "app=enterprise-gateway")
    assert out == "" and "No resources found" in err


@kubectlclient.needs(kubectlclient.KUSTOMIZE_COMPONENTS, "kubectl apply -k of an overlay with components")
async def test_every_overlay_applies_over_the_base(kubectl):
    """``kubectl apply -k`` of each overlay on a cluster running the base changes only what the component adds."""
    overlays = MANIFEST.parent / "overlays"
    await kubectl("apply", "-k", str(MANIFEST.parent / "base"))
    changes = {
        "external-ips": {"service/enterprise-gateway configured"},
        "kernel-namespace": {"namespace/kernel-ns created", "serviceaccount/kernel-sa created",
                             "rolebinding.rbac.authorization.k8s.io/kernel-controller created"},
        "kernelspecs-pv": {"persistentvolume/kernelspecs-pv created", "persistentvolumeclaim/kernelspecs-pvc created",
                           "deployment.apps/enterprise-gateway configured"},
        "shared-namespace": {"deployment.apps/enterprise-gateway configured"},
    }
    for overlay, expected in changes.items():
        _, out, _ = await kubectl("apply", "-k", str(overlays / overlay))
        changed = {line for line in out.splitlines() if not line.endswith(" unchanged")} - {f"{PDB} configured"}
        assert changed == expected, (overlay, out)
        await kubectl("apply", "-k", str(MANIFEST.parent / "base"))  # back to the base before the next one
    _, out, _ = await kubectl("get", "deployment", "enterprise-gateway", "-n", GATEWAY_NAMESPACE, "-o", "json")
    env = {e["name"]: e.get("value") for e in json.loads(out)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["EG_SHARED_NAMESPACE"] == "False"


@pytest.fixture
async def running(place, tmp_path) -> Any:
    """A cluster whose node runs pods, with the manifests applied and the gateway rolled out."""
    async with new_cluster(place, tmp_path / "running", runs_pods=True) as kubeconfig:
        kubectl = Kubectl(kubeconfig, tmp_path / "running-cache")
        await kubectl("apply", "-f", str(MANIFEST))
        await kubectl("rollout", "status", "deployment/enterprise-gateway", "-n", GATEWAY_NAMESPACE, "--timeout=90s")
        yield kubectl


@pytest.mark.slow
async def test_troubleshooting_tips_enter_a_gateway_pod_forward_its_service_and_follow_a_kernels_log(running):
    kubectl = running
    _, out, _ = await kubectl("get", "pods", "-l", "component=enterprise-gateway", "-n", GATEWAY_NAMESPACE, "-o", "json")
    gateway_pod = json.loads(out)["items"][0]["metadata"]["name"]

    # kubectl exec -it <gateway pod> -- /bin/bash
    code, output = await asyncio.to_thread(
        in_terminal, {**kubectl.env, "TERM": "dumb"},
        ["exec", "-it", gateway_pod, "-n", GATEWAY_NAMESPACE, "--", "/bin/bash"],
        b"echo \"in $(hostname) as $KERNEL_USERNAME\"; exit\n")
    assert code == 0, output
    assert f"in {gateway_pod} as " in output

    # kubectl port-forward svc/enterprise-gateway <local port>:8888
    async with forwarding(kubectl, {}, "svc/enterprise-gateway", "-n", GATEWAY_NAMESPACE, ":8888") as port:
        status, body = await asyncio.to_thread(http_request, port, "/api/kernelspecs")
        assert status == 200 and "python_kubernetes" in json.loads(body)["kernelspecs"]
        status, body = await asyncio.to_thread(http_request, port, "/api/kernels", "POST",
                                               {"name": "python_kubernetes", "env": {"KERNEL_USERNAME": "alice"}})
        assert status == 201, body
        kernel_id = json.loads(body)["id"]
        kernel_pod = kernel_resource_name("alice", kernel_id)

        # kubectl logs -f po/<kernel pod>: what the log holds, then what the kernel writes until it ends
        _, logged, _ = await kubectl("logs", f"po/{kernel_pod}", "-n", kernel_pod)
        follower = await asyncio.create_subprocess_exec(
            "kubectl", "logs", "-f", f"po/{kernel_pod}", "-n", kernel_pod, env=kubectl.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            assert logged and follower.stdout is not None  # the launcher has said what it started
            head = await asyncio.wait_for(follower.stdout.readexactly(len(logged.encode())), KUBECTL_TIMEOUT)
            assert head.decode() == logged
            status, _ = await asyncio.to_thread(http_request, port, f"/api/kernels/{kernel_id}", "DELETE")
            assert status == 204
            rest, err = await asyncio.wait_for(follower.communicate(), KUBECTL_TIMEOUT)
        finally:
            if follower.returncode is None:
                follower.kill()
                await follower.communicate()
    assert follower.returncode == 0, err  # it ended by itself, with the kernel's container
    assert rest, "what the kernel wrote while it shut down"
