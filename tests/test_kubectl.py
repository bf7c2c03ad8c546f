"""kubectl against the simulated cluster: the commands an operator uses on a real one.

The real kubectl binary runs as a subprocess (asyncio, with a timeout) while
the cluster serves on this test's event loop, with the kubeconfig the cluster
writes.
"""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest

from fakes.memory import MemoryCluster
from fakes.serve import SimulatedCluster
from tests import kubectlclient
from tests.kubectlclient import Kubectl
from tests.podwait import phase_is, wait_for_pod

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]



@pytest.fixture
async def cluster(tmp_path):
    async with SimulatedCluster(state_dir=tmp_path / "state") as c:
        yield c


@pytest.fixture
def kubectl(cluster, tmp_path):
    return Kubectl(cluster.kubeconfig_path, tmp_path / "cache")


def manifest(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


CONFIGMAPS = manifest("""
    apiVersion: v1
    kind: Namespace
    metadata:
      name: team-a
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: settings
      namespace: team-a
      labels: {app: gateway}
    data:
      mode: strict
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: other
      namespace: team-a
      labels: {app: unrelated}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: settings
      namespace: default
      labels: {app: gateway}
""")


async def test_create_then_get_with_labels_all_namespaces_and_json(kubectl):
    _, out, _ = await kubectl("create", "-f", "-", stdin=CONFIGMAPS)
    assert out.splitlines() == [
        "namespace/team-a created", "configmap/settings created", "configmap/other created", "configmap/settings created"
    ]
    _, out, _ = await kubectl("get", "configmaps", "-n", "team-a", "-l", "app=gateway")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "DATA", "AGE"]
    assert [line.split()[:2] for line in lines[1:]] == [["settings", "1"]]

    _, out, _ = await kubectl("get", "configmaps", "--all-namespaces", "-l", "app=gateway", "-o", "json")
    listed = json.loads(out)
    assert sorted((i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed["items"]) == [
        ("default", "settings"), ("team-a", "settings")
    ]
    _, out, _ = await kubectl("get", "namespace", "team-a")
    assert out.splitlines()[1].split()[:2] == ["team-a", "Active"]

    code, _, err = await kubectl("create", "-f", "-", stdin=CONFIGMAPS, check=False)
    assert code != 0 and 'namespaces "team-a" already exists' in err


async def test_get_in_chunks_lists_every_object_as_a_table_and_as_json(kubectl):
    """kubectl asks for lists 500 at a time and follows ``continue``; ``--chunk-size`` makes the pages small."""
    names = [f"chunk-{i}" for i in range(5)]
    await kubectl("create", "namespace", "chunks")
    for name in names:
        await kubectl("create", "configmap", name, "-n", "chunks")
    _, out, _ = await kubectl("get", "configmaps", "-n", "chunks", "--chunk-size=2")
    assert [line.split()[0] for line in out.splitlines()[1:] if line.startswith("chunk-")] == names
    _, out, _ = await kubectl("get", "configmaps", "-n", "chunks", "--chunk-size=2", "-o", "json")
    assert [i["metadata"]["name"] for i in json.loads(out)["items"] if i["metadata"]["name"] in names] == names


async def test_apply_creates_then_reports_unchanged_then_configures(kubectl):
    _, out, _ = await kubectl("apply", "-f", "-", stdin=CONFIGMAPS)
    assert "configmap/settings created" in out
    _, out, err = await kubectl("apply", "-f", "-", stdin=CONFIGMAPS)
    assert out.splitlines() == [
        "namespace/team-a unchanged", "configmap/settings unchanged", "configmap/other unchanged",
        "configmap/settings unchanged",
    ]
    assert "warning" not in err.lower()
    _, out, _ = await kubectl("apply", "-f", "-", stdin=CONFIGMAPS.replace("mode: strict", "mode: relaxed"))
    assert "configmap/settings configured" in out
    _, out, _ = await kubectl("get", "configmap", "settings", "-n", "team-a", "-o", "jsonpath={.data.mode}")
    assert out == "relaxed"


async def test_delete_by_name_by_label_and_a_namespace(kubectl):
    await kubectl("create", "-f", "-", stdin=CONFIGMAPS)
    _, out, _ = await kubectl("delete", "configmap", "other", "-n", "team-a")
    assert out.strip() == 'configmap "other" deleted'
    _, out, _ = await kubectl("delete", "configmaps", "-l", "app=gateway", "--all-namespaces")
    assert sorted(out.splitlines()) == ['configmap "settings" deleted', 'configmap "settings" deleted']
    _, out, err = await kubectl("get", "configmaps", "-n", "team-a", "-l", "app")
    assert out == "" and "No resources found" in err

    await kubectl("create", "configmap", "leftover", "-n", "team-a")
    _, out, _ = await kubectl("delete", "namespace", "team-a")  # waits until the namespace is gone
    assert out.strip() == 'namespace "team-a" deleted'
    code, _, err = await kubectl("get", "namespace", "team-a", check=False)
    assert code != 0 and 'namespaces "team-a" not found' in err


POD = manifest("""
    apiVersion: v1
    kind: Pod
    metadata:
      name: hello
      labels: {app: enterprise-gateway}
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "echo hello from the pod"]
""")


async def test_logs_of_a_pod_the_node_agent_ran(kubectl, cluster):
    await kubectl("create", "-f", "-", stdin=POD)
    if kubectlclient.has(kubectlclient.WAIT_FOR_JSONPATH):
        await kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/hello", "--timeout=30s")
    else:  # no condition of an older kubectl's wait tells a finished pod from one starting
        await wait_for_pod(MemoryCluster(cluster.store), "default", "hello", phase_is("Succeeded"), timeout=30)
    _, out, _ = await kubectl("logs", "hello")
    assert out == "hello from the pod\n"
    _, out, _ = await kubectl("get", "pod", "hello")
    assert out.splitlines()[1].split()[:4] == ["hello", "0/1", "Completed", "0"]


SERVICE = manifest("""
    apiVersion: v1
    kind: Service
    metadata:
      name: enterprise-gateway
      namespace: enterprise-gateway
      labels: {app: enterprise-gateway}
    spec:
      selector: {app: enterprise-gateway}
      ports:
      - {name: http, port: 8888, targetPort: 8888}
""")


async def test_get_all_by_label_across_namespaces(kubectl):
    await kubectl("create", "namespace", "enterprise-gateway")
    await kubectl("create", "-f", "-", stdin=SERVICE)
    await kubectl("create", "-n", "enterprise-gateway", "-f", "-", stdin=POD)
    await kubectl("create", "service", "clusterip", "unrelated", "--tcp=80:80")
    _, out, _ = await kubectl("get", "all", "-l", "app=enterprise-gateway", "--all-namespaces")
    names = [line.split()[1] for line in out.splitlines() if line.startswith("enterprise-gateway ")]
    assert sorted(names) == ["pod/hello", "service/enterprise-gateway"]
    assert "unrelated" not in out


async def test_auth_can_i_as_a_service_account(kubectl):
    await kubectl("create", "namespace", "kernels")
    await kubectl("create", "serviceaccount", "kernel-sa", "-n", "kernels")
    await kubectl("create", "role", "pod-reader", "-n", "kernels", "--verb=get,list,watch", "--resource=pods")
    await kubectl("create", "rolebinding", "kernel-sa-reads", "-n", "kernels", "--role=pod-reader",
                  "--serviceaccount=kernels:kernel-sa")
    as_sa = "--as=system:serviceaccount:kernels:kernel-sa"
    code, out, _ = await kubectl("auth", "can-i", "list", "pods", "-n", "kernels", as_sa, check=False)
    assert (code, out.strip()) == (0, "yes")
    code, out, _ = await kubectl("auth", "can-i", "delete", "pods", "-n", "kernels", as_sa, check=False)
    assert (code, out.strip()) == (1, "no")
    code, out, _ = await kubectl("auth", "can-i", "list", "pods", "-n", "default", as_sa, check=False)
    assert (code, out.strip()) == (1, "no")
    code, _, err = await kubectl("get", "pods", "-n", "default", as_sa, check=False)
    assert code != 0 and 'User "system:serviceaccount:kernels:kernel-sa" cannot list resource "pods"' in err


async def test_imperative_creates_that_kubectl_sends_as_protobuf(kubectl):
    await kubectl("create", "namespace", "imp")
    await kubectl("create", "configmap", "c", "-n", "imp", "--from-literal=k=v")
    await kubectl("create", "secret", "generic", "s", "-n", "imp", "--from-literal=p=q")
    await kubectl("create", "service", "clusterip", "svc", "-n", "imp", "--tcp=80:8080")
    await kubectl("create", "serviceaccount", "sa", "-n", "imp")
    _, out, _ = await kubectl("get", "configmap/c", "secret/s", "service/svc", "-n", "imp", "-o", "json")
    cm, secret, svc = json.loads(out)["items"]
    assert cm["data"] == {"k": "v"}
    assert secret["data"] == {"p": "cQ=="} and secret["type"] == "Opaque"
    assert svc["spec"]["ports"] == [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}]

    args, stdin = kubectlclient.token_command("sa", "imp", seconds=20 * 60)
    _, out, _ = await kubectl(*args, stdin=stdin)
    code, _, err = await kubectl("get", "pods", "-n", "imp", f"--token={kubectlclient.read_token(out)}", check=False)
    assert code != 0 and 'User "system:serviceaccount:imp:sa" cannot list resource "pods"' in err

    code, _, err = await kubectl("create", "deployment", "d", "--image=busybox", "-n", "imp", check=False)
    if kubectlclient.has(kubectlclient.PROTOBUF_CREATES):
        assert code != 0 and "protobuf bodies of kind Deployment are not understood" in err
    else:  # a JSON body, which the server reads like any other
        assert code == 0, err
        _, out, _ = await kubectl("get", "deployment", "d", "-n", "imp", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
        assert out == "busybox"


async def test_auth_whoami_shows_the_impersonated_service_account(kubectl):
    args, stdin = kubectlclient.whoami_command("-o", "json")
    _, out, _ = await kubectl(*args, stdin=stdin)
    assert json.loads(out)["status"]["userInfo"]["groups"] == ["system:masters", "system:authenticated"]
    args, stdin = kubectlclient.whoami_command("-o", "json", "--as=system:serviceaccount:default:default")
    _, out, _ = await kubectl(*args, stdin=stdin)
    info = json.loads(out)["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:default:default"
    assert info["groups"] == ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]


async def test_auth_can_i_list_shows_a_service_accounts_rules(kubectl):
    await kubectl("create", "serviceaccount", "lister")
    await kubectl("create", "role", "cm-reader", "--verb=get,list", "--resource=configmaps")
    await kubectl("create", "rolebinding", "lister-reads", "--role=cm-reader", "--serviceaccount=default:lister")
    _, out, _ = await kubectl("auth", "can-i", "--list", "--as=system:serviceaccount:default:lister")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert ["configmaps", "[]", "[]", "[get", "list]"] in rows
    assert not any(row[0] == "secrets" for row in rows)


async def test_api_resources_lists_the_reviews_a_manifest_can_create(kubectl):
    """Discovery names the self reviews, so ``kubectl create -f`` of one finds where to post it."""
    _, out, _ = await kubectl("api-resources", "--api-group=authentication.k8s.io", "-o", "name")
    assert out.split() == ["selfsubjectreviews.authentication.k8s.io"]
    _, out, _ = await kubectl("api-resources", "--api-group=authorization.k8s.io", "-o", "name")
    assert sorted(out.split()) == ["selfsubjectaccessreviews.authorization.k8s.io",
                                   "selfsubjectrulesreviews.authorization.k8s.io",
                                   "subjectaccessreviews.authorization.k8s.io"]


ENV_DEPLOYMENT = manifest("""
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: envs
    spec:
      selector:
        matchLabels: {app: envs}
      template:
        metadata:
          labels: {app: envs}
        spec:
          containers:
          - name: main
            image: busybox
            env:
            - {name: FIRST, value: "1"}
            - {name: SECOND, value: "2"}
            - {name: THIRD, value: "3"}
""")


async def test_reapplying_a_manifest_restores_its_order(kubectl):
    """An env var dropped then re-added by ``kubectl apply`` goes back where the manifest has it."""
    await kubectl("apply", "-f", "-", stdin=ENV_DEPLOYMENT)
    await kubectl("apply", "-f", "-", stdin=ENV_DEPLOYMENT.replace('        - {name: SECOND, value: "2"}\n', ""))
    env = "jsonpath={.spec.template.spec.containers[0].env[*].name}"
    _, out, _ = await kubectl("get", "deployment", "envs", "-o", env)
    assert out.split() == ["FIRST", "THIRD"]
    await kubectl("apply", "-f", "-", stdin=ENV_DEPLOYMENT)
    _, out, _ = await kubectl("get", "deployment", "envs", "-o", env)
    assert out.split() == ["FIRST", "SECOND", "THIRD"]
