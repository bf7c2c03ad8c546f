"""What a pod sees of the simulated node that the host does not: its hostname, its ``/etc/hosts``, and its
service account's token, ``ca.crt`` and ``namespace`` at the path in-cluster clients read.

Real processes (``slow``) under a node agent that knows its API server's CA; the pods print what
they see and the test reads their logs.  Needs root (a mount namespace per pod), as the node does.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fakes.node.kubelet import NodeAgent
from fakes.node.sandbox import SERVICE_ACCOUNT_PATH, namespaces_available
from fakes.state.store import Store
from gateway.cluster.interface import Cluster
from tests.kubeletharness import admin_fixture, store_fixture  # noqa: F401  (fixtures: admin, store)
from tests.node import node_agent
from tests.podwait import phase_is, wait_for_pod

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not namespaces_available(), reason="a mount namespace per pod needs root and util-linux"),
]

NS = "default"
CA = b"-----BEGIN CERTIFICATE-----\nnot a real one\n-----END CERTIFICATE-----\n"


@pytest.fixture
async def agent(store: Store, tmp_path: Path) -> AsyncIterator[NodeAgent]:
    store.publish_root_ca(CA)  # as the API server serving the store does
    node = node_agent(store, tmp_path / "node", api_server_url="https://127.0.0.1:6443", api_ca_pem=CA)
    await node.start()
    yield node
    await node.stop()


def pod(name: str, command: list[str], **spec: object) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox", "command": command}],
                 **spec},
    }


def host_view(path: Path) -> str:
    """What the host (not a pod) reads at ``path``."""
    return path.read_text() if path.exists() else ""


async def run(admin: Cluster, spec: dict) -> str:
    await admin.create("pods", spec, namespace=NS)
    done = await wait_for_pod(admin, NS, spec["metadata"]["name"], phase_is("Succeeded", "Failed"), timeout=20)
    log = await admin.read_pod_log(spec["metadata"]["name"], NS)
    assert done["status"]["phase"] == "Succeeded", log
    return log


async def test_a_pod_sees_its_hostname_hosts_and_service_account_files(admin, store, agent):
    host_name = socket.gethostname()
    script = (f"hostname; grep \"$(hostname)\" /etc/hosts; head -1 /etc/hosts; "
              f"cd {SERVICE_ACCOUNT_PATH}; cat namespace; echo; cat ca.crt; cat token; echo; "
              "touch written 2>/dev/null || echo read-only")
    lines = (await run(admin, pod("looker", ["sh", "-c", script]))).splitlines()
    pod_ip = (await admin.get("pods", "looker", namespace=NS))["status"]["podIP"]
    assert lines[0] == "looker"
    assert lines[1].split() == [pod_ip, "looker"]
    assert lines[2] == "# Kubernetes-managed hosts file."
    assert lines[3] == NS
    assert "\n".join(lines[4:7]) + "\n" == CA.decode()
    user = store.tokens.authenticate(lines[7], store.service_account_exists)
    assert user is not None and user.name == "system:serviceaccount:default:default"
    assert lines[8] == "read-only"
    # The host kept its own.
    assert socket.gethostname() == host_name
    assert lines[7] not in await asyncio.to_thread(host_view, Path(SERVICE_ACCOUNT_PATH, "token"))


async def test_a_pod_without_an_automounted_token_gets_no_service_account_files(admin, agent):
    log = await run(admin, pod("bare", ["sh", "-c", f"ls {SERVICE_ACCOUNT_PATH} | wc -l"],
                               automountServiceAccountToken=False))
    assert log.strip() == "0"


async def test_the_container_environment_is_exactly_the_pods(admin, agent):
    """The sandbox's shell leaves nothing of its own (``PWD``) in the program's environment."""
    log = await run(admin, pod("env", ["env"]))
    names = {line.split("=", 1)[0] for line in log.splitlines()}
    assert "PWD" not in names and "HOSTNAME" in names and "KUBERNETES_SERVICE_HOST" in names


async def test_a_missing_program_is_still_a_start_error(admin, agent):
    await admin.create("pods", pod("missing", ["no-such-program"]), namespace=NS)
    failed = await wait_for_pod(admin, NS, "missing", phase_is("Failed"), timeout=20)
    terminated = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "StartError"
    assert 'exec: "no-such-program": executable file not found in $PATH' in terminated["message"]


async def test_a_pod_gets_the_projected_volumes_its_spec_names_where_its_container_mounts_them(admin, store, agent):
    """The node fills a volume from the pod spec, not a fixed one: a token, a ConfigMap's key and the pod's
    name, at the container's mount path (and no token volume where the pod declines one)."""
    await admin.create("configmaps", {"metadata": {"name": "settings"}, "data": {"a": "from the map"}}, namespace=NS)
    volume = {"name": "info", "projected": {"sources": [
        {"serviceAccountToken": {"path": "t", "expirationSeconds": 600}},
        {"configMap": {"name": "settings", "items": [{"key": "a", "path": "a.txt"}]}},
        {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
    ]}}
    script = f"cat /etc/info/a.txt; echo; cat /etc/info/name; echo; cat /etc/info/t; echo; ls {SERVICE_ACCOUNT_PATH} | wc -l"
    spec = pod("projected", ["sh", "-c", script], automountServiceAccountToken=False, volumes=[volume])
    spec["spec"]["containers"][0]["volumeMounts"] = [{"name": "info", "mountPath": "/etc/info"}]
    lines = (await run(admin, spec)).splitlines()
    assert lines[:2] == ["from the map", "projected"]
    user = store.tokens.authenticate(lines[2], store.service_account_exists)
    assert user is not None and user.name == "system:serviceaccount:default:default"
    assert lines[3] == "0"


async def test_a_volume_whose_config_map_is_missing_waits_for_it_as_failed_mount(admin, agent):
    volume = {"name": "later", "projected": {"sources": [{"configMap": {"name": "later"}}]}}
    spec = pod("waiting", ["cat", "/etc/later/k"], automountServiceAccountToken=False, volumes=[volume])
    spec["spec"]["containers"][0]["volumeMounts"] = [{"name": "later", "mountPath": "/etc/later"}]
    events = admin.watch("events", namespace=NS, field_selector="involvedObject.name=waiting")
    await admin.create("pods", spec, namespace=NS)

    async def failed_mount() -> str:
        async for event in events:
            if event.object.get("reason") == "FailedMount":
                return event.object["message"]
        raise AssertionError("the watch ended")

    try:
        message = await asyncio.wait_for(failed_mount(), 20)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    assert message == 'MountVolume.SetUp failed for volume "later" : configmap "later" not found'
    await admin.create("configmaps", {"metadata": {"name": "later"}, "data": {"k": "here"}}, namespace=NS)
    done = await wait_for_pod(admin, NS, "waiting", phase_is("Succeeded", "Failed"), timeout=20)
    assert done["status"]["phase"] == "Succeeded"
    assert await admin.read_pod_log("waiting", NS) == "here"
