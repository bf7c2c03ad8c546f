"""What a pod and its namespace get for talking to the API server: the token volume ServiceAccount
admission adds to every pod, and the ``kube-root-ca.crt`` ConfigMap the root-CA publisher keeps in
every namespace (the volume's ``ca.crt`` comes from it)."""

from __future__ import annotations

import base64
import re
from typing import Any

import yaml

from gateway.cluster.interface import Cluster

from .conftest import Target
from .helpers import pod, wait_for

MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ACCESS_VOLUME = re.compile(r"kube-api-access-[a-z0-9]{5}")
TOKEN_VOLUME_SOURCE = {
    "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ],
    "defaultMode": 420,
}
ROOT_CA = "kube-root-ca.crt"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the "
    "internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of "
    "Kubernetes clusters."
)


def mounts(created: dict[str, Any]) -> list[list[dict[str, Any]]]:
    spec = created["spec"]
    return [c.get("volumeMounts") or [] for c in [*spec.get("initContainers", []), *spec["containers"]]]


async def test_a_new_pod_gets_a_token_volume_mounted_read_only_in_every_container(cluster: Cluster, ns: str) -> None:
    body = pod("p")
    body["spec"]["initContainers"] = [{"name": "init", "image": "busybox:1.36", "command": ["true"]}]
    created = await cluster.create("pods", body, namespace=ns)
    assert created["spec"]["serviceAccountName"] == "default"
    [volume] = created["spec"]["volumes"]
    assert ACCESS_VOLUME.fullmatch(volume["name"]), volume["name"]
    assert volume["projected"] == TOKEN_VOLUME_SOURCE
    mount = {"name": volume["name"], "readOnly": True, "mountPath": MOUNT_PATH}
    assert mounts(created) == [[mount], [mount]]
    other = await cluster.create("pods", pod("q"), namespace=ns)
    assert other["spec"]["volumes"][0]["name"] != volume["name"]  # a random suffix for each pod


async def test_a_mount_of_its_own_at_the_path_or_a_volume_of_the_name_is_kept(cluster: Cluster, ns: str) -> None:
    body = pod("own-mount", volumes=[{"name": "mine", "emptyDir": {}}])
    body["spec"]["initContainers"] = [{"name": "init", "image": "busybox:1.36", "command": ["true"],
                                       "volumeMounts": [{"name": "mine", "mountPath": MOUNT_PATH}]}]
    created = await cluster.create("pods", body, namespace=ns)
    volumes = created["spec"]["volumes"]
    assert [v["name"] for v in volumes][0] == "mine" and ACCESS_VOLUME.fullmatch(volumes[1]["name"])
    assert mounts(created) == [[{"name": "mine", "mountPath": MOUNT_PATH}],
                               [{"name": volumes[1]["name"], "readOnly": True, "mountPath": MOUNT_PATH}]]

    body = pod("own-volume", volumes=[{"name": "kube-api-access-mine", "emptyDir": {}}])
    created = await cluster.create("pods", body, namespace=ns)
    assert created["spec"]["volumes"] == [{"name": "kube-api-access-mine", "emptyDir": {}}]
    assert mounts(created) == [[{"name": "kube-api-access-mine", "readOnly": True, "mountPath": MOUNT_PATH}]]


async def test_automount_false_on_the_pod_or_its_account_adds_no_volume(cluster: Cluster, ns: str) -> None:
    await cluster.create("serviceaccounts", {"metadata": {"name": "quiet"}, "automountServiceAccountToken": False,
                                             "imagePullSecrets": [{"name": "pull"}]}, namespace=ns)
    declined = await cluster.create("pods", pod("declined", automountServiceAccountToken=False), namespace=ns)
    assert "volumes" not in declined["spec"] and mounts(declined) == [[]]
    by_account = await cluster.create("pods", pod("by-account", serviceAccountName="quiet"), namespace=ns)
    assert "volumes" not in by_account["spec"] and mounts(by_account) == [[]]
    assert by_account["spec"]["imagePullSecrets"] == [{"name": "pull"}]  # the account's, for a pod naming none
    # The pod's own word wins over its account's.
    wanted = await cluster.create("pods", pod("wanted", serviceAccountName="quiet", automountServiceAccountToken=True),
                                  namespace=ns)
    assert wanted["spec"]["volumes"][0]["projected"] == TOKEN_VOLUME_SOURCE


def _kubeconfig_ca(target: Target) -> str | None:
    """The CA the target's admin kubeconfig trusts (``None`` for a target without a wire)."""
    if target.kubeconfig is None:
        return None
    cluster = yaml.safe_load(target.kubeconfig.read_text())["clusters"][0]["cluster"]
    if "certificate-authority-data" in cluster:
        return base64.b64decode(cluster["certificate-authority-data"]).decode()
    with open(cluster["certificate-authority"]) as ca:
        return ca.read()


def _published(obj: dict[str, Any] | None, ca: str | None) -> bool:
    return (obj is not None and obj.get("data") == {"ca.crt": ca}
            and (obj["metadata"].get("annotations") or {}).get("kubernetes.io/description") == DESCRIPTION)


async def test_every_namespace_gets_the_root_ca_config_map(target: Target, cluster: Cluster, ns: str) -> None:
    # A store no API server serves has no CA: it publishes an empty one (docs/known-differences.md).
    ca = _kubeconfig_ca(target) or ""
    published = await wait_for(cluster, "configmaps", ROOT_CA, namespace=ns, until=lambda o: o is not None)
    assert published is not None and _published(published, ca), published
    assert published["metadata"]["annotations"] == {"kubernetes.io/description": DESCRIPTION}
    if ca:
        assert ca.startswith("-----BEGIN CERTIFICATE-----")


async def test_the_root_ca_config_map_is_restored_when_changed_and_made_again_when_deleted(
        target: Target, cluster: Cluster, ns: str) -> None:
    ca = _kubeconfig_ca(target) or ""
    first = await wait_for(cluster, "configmaps", ROOT_CA, namespace=ns, until=lambda o: _published(o, ca))
    assert first is not None
    changed = {**first, "data": {"ca.crt": "not a CA", "extra": "x"}}
    changed["metadata"] = {**first["metadata"], "labels": {"mine": "yes"},
                           "annotations": {"kubernetes.io/description": "mine", "other": "kept"}}
    written = await cluster.replace("configmaps", ROOT_CA, changed, namespace=ns)
    assert written["data"] == {"ca.crt": "not a CA", "extra": "x"}  # the write itself succeeds
    restored = await wait_for(cluster, "configmaps", ROOT_CA, namespace=ns, until=lambda o: _published(o, ca))
    assert restored is not None
    assert restored["metadata"]["uid"] == first["metadata"]["uid"]
    # Only the data and the description are the publisher's: the rest of the metadata stays the writer's.
    assert restored["metadata"]["labels"] == {"mine": "yes"}
    assert restored["metadata"]["annotations"] == {"kubernetes.io/description": DESCRIPTION, "other": "kept"}

    await cluster.delete("configmaps", ROOT_CA, namespace=ns)
    again = await wait_for(cluster, "configmaps", ROOT_CA, namespace=ns,
                           until=lambda o: o is not None and o["metadata"]["uid"] != first["metadata"]["uid"])
    assert _published(again, ca) and "labels" not in again["metadata"]
