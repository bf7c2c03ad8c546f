"""``kubectl apply --server-side`` of the gateway's manifest on the simulated cluster.

The real kubectl sends each object as an apply configuration
(``application/apply-patch+yaml``, ``fieldManager=kubectl``); the simulated API
server merges it, records the manager in ``managedFields`` and refuses another
manager's change to a field kubectl owns, unless forced.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fakes.serve import SimulatedCluster
from tests.kubectlclient import Kubectl

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

MANIFEST = Path(__file__).resolve().parents[1] / "manifests" / "enterprise-gateway.yaml"


@pytest.fixture
async def kubectl(tmp_path: Path):
    async with SimulatedCluster(node_agent=False, state_dir=tmp_path / "state") as cluster:
        yield Kubectl(cluster.kubeconfig_path, tmp_path / "cache")


async def versions(kubectl: Kubectl) -> dict[str, str]:
    """kind/namespace/name -> resourceVersion of every object in the manifest."""
    _, out, _ = await kubectl("get", "-f", str(MANIFEST), "-o", "json")
    items = json.loads(out)["items"]
    return {f"{i['kind']}/{i['metadata'].get('namespace', '')}/{i['metadata']['name']}": i["metadata"]["resourceVersion"]
            for i in items}


async def test_the_manifest_applies_server_side_twice_without_change(kubectl: Kubectl) -> None:
    _, out, _ = await kubectl("apply", "--server-side", "-f", str(MANIFEST))
    lines = out.splitlines()
    assert lines and all(line.endswith(" serverside-applied") for line in lines), out
    first = await versions(kubectl)
    _, again, _ = await kubectl("apply", "--server-side", "-f", str(MANIFEST))
    assert again.splitlines() == lines
    assert await versions(kubectl) == first
    _, out, _ = await kubectl("get", "deployment", "enterprise-gateway", "-n", "enterprise-gateway", "-o", "json",
                              "--show-managed-fields")
    entries = json.loads(out)["metadata"]["managedFields"]
    assert {(e["manager"], e["operation"]) for e in entries} >= {("kubectl", "Apply")}
    applied = next(e for e in entries if e["manager"] == "kubectl")
    assert "f:replicas" in applied["fieldsV1"]["f:spec"]


async def test_another_manager_conflicts_until_it_forces(kubectl: Kubectl) -> None:
    await kubectl("apply", "--server-side", "-f", str(MANIFEST))
    scaled = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: enterprise-gateway
  namespace: enterprise-gateway
spec:
  replicas: 3
"""
    code, _, err = await kubectl("apply", "--server-side", "--field-manager=autoscaler", "-f", "-", stdin=scaled,
                                 check=False)
    assert code != 0
    assert 'conflict with "kubectl"' in err and ".spec.replicas" in err, err
    await kubectl("apply", "--server-side", "--field-manager=autoscaler", "--force-conflicts", "-f", "-", stdin=scaled)
    _, out, _ = await kubectl("get", "deployment", "enterprise-gateway", "-n", "enterprise-gateway", "-o", "json",
                              "--show-managed-fields")
    deployment = json.loads(out)
    assert deployment["spec"]["replicas"] == 3
    owners = {e["manager"]: e["fieldsV1"] for e in deployment["metadata"]["managedFields"]}
    assert owners["autoscaler"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in owners["kubectl"].get("f:spec", {})
