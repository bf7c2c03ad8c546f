"""The simulated cluster the provisioner's tests launch real kernels on, and what they check it with.

The gateway acts as its service account, with the ClusterRole of the
manifests, over the in-memory cluster; a node agent runs the kernel image as
this repository's ``bootstrap-kernel.sh`` and launcher, and a real response
listener receives the launchers' connection info.  The ``env`` fixture
(:func:`env_fixture`) builds all of it for one test and, once it is torn down,
checks that no kernel process outlived the node.  The tests in
``tests/test_provisioner_*.py`` import it; they wait by watches with timeouts
and never sleep.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from fakes.auth.identity import node_user, service_account_user
from fakes.gateway_rbac import install_gateway_rbac
from fakes.memory import MemoryCluster
from fakes.node.kernel_images import kernel_image_map, repository_root
from fakes.node.kubelet import NodeAgent
from fakes.state.store import Store
from gateway.cluster.informer import Informer
from gateway.cluster.interface import Cluster, NotFound
from gateway.objects import kernel_selector
from gateway.provisioner import (
    LaunchRequest,
    PodProvisioner,
    ProvisionerSettings,
    ResponseListener,
    kernel_spec_info,
)
from tests.node import FAST, processes_mentioning, script_image

GATEWAY_NAMESPACE = "enterprise-gateway"
GATEWAY_ACCOUNT = "enterprise-gateway-sa"
KERNEL_CLUSTER_ROLE = "kernel-controller"
RBAC = "rbac.authorization.k8s.io"

SILENT_IMAGE = "test/silent-kernel:1"  # starts, never calls back
FAILING_IMAGE = "test/failing-kernel:1"  # prints a line and exits 1
WAIT = 60.0  # bound for a kernel to start on a loaded machine
SPEC = kernel_spec_info("python_kubernetes", repository_root() / "kernelspecs" / "python_kubernetes")


async def install_gateway(admin: Cluster) -> None:
    """What the manifests set up: the gateway's namespace, service account and RBAC, the kernel ClusterRole."""
    await install_gateway_rbac(admin, GATEWAY_NAMESPACE)


@dataclass
class Env:
    """One test's cluster: ``admin`` to inspect and change it, the gateway's ``provisioner`` to launch kernels.

    Every request made with :meth:`request` is remembered, so that the fixture
    can check at its end that none of those kernels' processes is still alive.
    """

    store: Store
    admin: Cluster
    gateway: Cluster
    agent: NodeAgent
    pods: Informer
    listener: ResponseListener
    settings: ProvisionerSettings
    provisioner: PodProvisioner
    kernel_ids: list[str] = field(default_factory=list)

    def provisioner_with(self, **changes: Any) -> PodProvisioner:
        """Another provisioner over the same cluster, informer and listener, with other settings."""
        return PodProvisioner(self.gateway, self.pods, self.listener, replace(self.settings, **changes))

    def request(self, *, username: str = "alice", timeout: float = WAIT, spec: Any = SPEC, **env: str) -> LaunchRequest:
        kernel_id = str(uuid.uuid4())
        self.kernel_ids.append(kernel_id)
        return LaunchRequest(kernel_id=kernel_id, username=username, spec=spec,
                             env={"KERNEL_USERNAME": username, **env}, timeout=timeout)


@pytest.fixture(name="env")
async def env_fixture(tmp_path: Path) -> AsyncIterator[Env]:
    store = Store()
    admin = MemoryCluster(store)
    await install_gateway(admin)
    gateway = MemoryCluster(store, service_account_user(GATEWAY_NAMESPACE, GATEWAY_ACCOUNT))
    images = kernel_image_map()
    images.add(SILENT_IMAGE, script_image(tmp_path / "silent.sh", "exec sleep 300"))
    images.add(FAILING_IMAGE, script_image(tmp_path / "failing.sh", 'echo "no kernel today" >&2; exit 1'))
    agent = NodeAgent(MemoryCluster(store, node_user("node-1")), node_name="node-1", images=images, store=store,
                      work_dir=tmp_path / "node", backoff=FAST, shutdown_grace_seconds=1)
    pods = Informer(gateway, "pods", label_selector=kernel_selector())
    listener = ResponseListener(host="127.0.0.1", port=0)
    await agent.start()
    await listener.start()
    await pods.start()
    settings = ProvisionerSettings(gateway_namespace=GATEWAY_NAMESPACE, kernel_cluster_role=KERNEL_CLUSTER_ROLE,
                                   response_address=f"127.0.0.1:{listener.port}")
    provisioner = PodProvisioner(gateway, pods, listener, settings)
    env = Env(store, admin, gateway, agent, pods, listener, settings, provisioner)
    try:
        yield env
    finally:
        await provisioner.close()
        await pods.stop()
        await listener.stop()
        await agent.stop()
        await gateway.close()
        await admin.close()
    for kernel_id in env.kernel_ids:
        assert not processes_mentioning(kernel_id), f"a process of kernel {kernel_id} outlived the node"


async def labelled(admin: Cluster, resource: str, kernel_id: str) -> list[str]:
    """``namespace/name`` of every ``resource`` object labelled for ``kernel_id``."""
    listing = await admin.list(resource, label_selector=f"kernel_id={kernel_id}")
    return [f"{(o['metadata'].get('namespace') or '')}/{o['metadata']['name']}" for o in listing["items"]]


async def assert_nothing_left(admin: Cluster, kernel_id: str) -> None:
    for resource in ("pods", "namespaces", "rolebindings", "services", "configmaps"):
        assert await labelled(admin, resource, kernel_id) == [], f"{resource} of kernel {kernel_id} left behind"


async def exists(admin: Cluster, resource: str, name: str, namespace: str | None = None) -> bool:
    try:
        await admin.get(resource, name, namespace=namespace)
    except NotFound:
        return False
    return True
