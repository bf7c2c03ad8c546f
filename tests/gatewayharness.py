"""The kernel service on the simulated cluster, with real kernels, for tests.

``gateway_harness`` sets up what a deployed gateway has: the manifests' RBAC
(the gateway runs as its service account ``enterprise-gateway-sa``), a node
agent running the kernel-py image as this repository's launcher and IPython
kernel, the pod informer, the response listener, the provisioner, the shipped
kernelspecs and a started :class:`~gateway.kernels.service.KernelService`::

    async with gateway_harness(tmp_path, mode="own") as h:
        kernel = await h.service.start_kernel(name=None, env=h.env(), username_fallback="gw")
        assert await execute(kernel, "1+1") == ["2"]

``mode`` picks one of the three namespace modes: ``own`` (a namespace per
kernel, created and deleted by the gateway), ``shared`` (``EG_SHARED_NAMESPACE``)
and ``user`` (``KERNEL_NAMESPACE`` naming a namespace and service account the
user made; :meth:`Harness.env` adds them).  Leaving the block stops the
service and everything else; a task left behind fails the test
(``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakes.auth.identity import service_account_user
from fakes.gateway_rbac import install_gateway_rbac
from fakes.manifests import gateway_rules, kernel_rules
from fakes.memory import MemoryCluster
from fakes.node.kernel_images import kernel_image_map, repository_root
from fakes.node.kubelet import NodeAgent
from fakes.state.store import Store
from gateway.cluster.informer import Informer
from gateway.cluster.interface import Cluster
from gateway.kernels.channels import KernelChannels
from gateway.kernels.kernel import Kernel
from gateway.kernels.service import KernelService
from gateway.kernels.settings import KernelSettings
from gateway.kernels.specs import KernelSpecs
from gateway.objects import kernel_selector
from gateway.provisioner import PodProvisioner, ProvisionerSettings, ResponseListener
from tests.counting import CountingCluster
from tests.node import node_agent, script_image

GATEWAY_NAMESPACE = "enterprise-gateway"
GATEWAY_ACCOUNT = "enterprise-gateway-sa"
KERNEL_CLUSTER_ROLE = "kernel-controller"
USER_NAMESPACE = "alice-work"
USER_ACCOUNT = "alice-sa"
RBAC = "rbac.authorization.k8s.io"
MODES = ("own", "shared", "user")
WAIT = 60.0
"""Bound on a kernel start or an execution on a loaded machine."""
FAILING_IMAGE = "test/failing-kernel:1"
"""An image whose container prints a line and exits 1: every launch of it fails."""
MISSING_IMAGE = "registry.example.com/nobody/kernel-py:404"
SILENT_IMAGE = "test/silent-kernel:1"
"""An image whose container runs but never calls back: launches of it wait for their timeout."""

GATEWAY_RULES: list[dict[str, Any]] = gateway_rules()
"""The gateway's ClusterRole, as the manifests grant it."""
KERNEL_RULES: list[dict[str, Any]] = kernel_rules()


async def install_gateway(admin: Cluster) -> None:
    """What an operator applies: the gateway's namespace, account and RBAC, the kernel ClusterRole, a user's namespace."""
    await install_gateway_rbac(admin, GATEWAY_NAMESPACE)
    # labelled as the kernel-namespace manifest labels a namespace prepared for users' kernels
    await admin.create("namespaces", {"metadata": {"name": USER_NAMESPACE, "labels": {
        "owner": "alice", "app": "enterprise-gateway", "component": "kernel"}}})
    await admin.create("serviceaccounts", {"metadata": {"name": USER_ACCOUNT}}, namespace=USER_NAMESPACE)


def kernelspec_variant(base: Path, name: str, **changes: Any) -> Path:
    """A copy of the shipped ``python_kubernetes`` kernelspec named ``name`` under ``base``, with kernel.json ``changes``."""
    folder = base / name
    shutil.copytree(repository_root() / "kernelspecs" / "python_kubernetes", folder)
    kernel_json = json.loads((folder / "kernel.json").read_text())
    kernel_json.update(changes)
    (folder / "kernel.json").write_text(json.dumps(kernel_json))
    return base


@dataclass
class Harness:
    mode: str
    store: Store
    admin: Cluster
    agent: NodeAgent
    pods: Informer
    provisioner: PodProvisioner
    specs: KernelSpecs
    service: KernelService
    api_calls: Counter[tuple[str, str]]
    """Requests the gateway made to the cluster, by ``(verb, resource)`` (a watch counts when opened)."""

    def env(self, **extra: str) -> dict[str, str]:
        """A client's env for this mode (``KERNEL_NAMESPACE`` + account in ``user`` mode)."""
        env = {"KERNEL_USERNAME": "alice"}
        if self.mode == "user":
            env.update(KERNEL_NAMESPACE=USER_NAMESPACE, KERNEL_SERVICE_ACCOUNT_NAME=USER_ACCOUNT)
        env.update(extra)
        return env

    async def start(self, **extra: str) -> Kernel:
        return await self.service.start_kernel(name=None, env=self.env(**extra), username_fallback="gateway")

    async def labelled(self, resource: str, kernel_id: str) -> list[str]:
        """``namespace/name`` of every ``resource`` labelled with ``kernel_id``, as the admin sees them."""
        listing = await self.admin.list(resource, label_selector=f"kernel_id={kernel_id}")
        return [f"{o['metadata'].get('namespace') or ''}/{o['metadata']['name']}" for o in listing["items"]]

    async def pods_of(self, kernel_id: str) -> list[dict[str, Any]]:
        listing = await self.admin.list("pods", label_selector=f"kernel_id={kernel_id}")
        return listing["items"]

    async def namespace_exists(self, name: str) -> bool:
        listing = await self.admin.list("namespaces", field_selector=f"metadata.name={name}")
        return bool(listing["items"])

    async def assert_nothing_left(self, kernel_id: str) -> None:
        """No pod, namespace, role binding or companion of ``kernel_id`` remains; the user's namespace does."""
        for resource in ("pods", "namespaces", "rolebindings", "services", "configmaps"):
            assert await self.labelled(resource, kernel_id) == [], f"{resource} of {kernel_id} left behind"
        assert await self.namespace_exists(USER_NAMESPACE)
        account = await self.admin.list("serviceaccounts", namespace=USER_NAMESPACE,
                                        field_selector=f"metadata.name={USER_ACCOUNT}")
        assert account["items"], "the user's service account was deleted"


@contextlib.asynccontextmanager
async def gateway_harness(tmp_path: Path, *, mode: str = "own", spec_paths: tuple[Path, ...] = (),
                          **settings: Any) -> AsyncIterator[Harness]:
    """The kernel service over a fresh simulated cluster; ``settings`` override :class:`KernelSettings` fields.

    ``spec_paths`` are searched for kernelspecs before the shipped ones.
    """
    assert mode in MODES
    store = Store()
    admin = MemoryCluster(store)
    await install_gateway(admin)
    gateway = CountingCluster(MemoryCluster(store, service_account_user(GATEWAY_NAMESPACE, GATEWAY_ACCOUNT)))
    images = kernel_image_map()
    images.add(FAILING_IMAGE, script_image(tmp_path / f"failing-{uuid.uuid4().hex[:6]}.sh",
                                           'echo "no kernel today" >&2; exit 1'))
    images.add(SILENT_IMAGE, script_image(tmp_path / f"silent-{uuid.uuid4().hex[:6]}.sh", "exec sleep 300"))
    agent = node_agent(store, tmp_path / f"node-{uuid.uuid4().hex[:6]}", images=images)
    pods = Informer(gateway, "pods", label_selector=kernel_selector())
    listener = ResponseListener(host="127.0.0.1", port=0)
    await agent.start()
    await listener.start()
    await pods.start()
    provisioner = PodProvisioner(gateway, pods, listener, ProvisionerSettings(
        gateway_namespace=GATEWAY_NAMESPACE, kernel_cluster_role=KERNEL_CLUSTER_ROLE,
        shared_namespace=(mode == "shared"), response_address=f"127.0.0.1:{listener.port}"))
    specs = KernelSpecs([*spec_paths, repository_root() / "kernelspecs"], allowed=None, default_name=None,
                        authorized_users=frozenset(), unauthorized_users=frozenset({"root"}))
    kernel_settings = dataclasses.replace(KernelSettings(launch_timeout=WAIT, shutdown_wait_time=2.0), **settings)
    service = KernelService(provisioner, specs, kernel_settings)
    await service.start()
    try:
        yield Harness(mode, store, admin, agent, pods, provisioner, specs, service, gateway.calls)
    finally:
        await service.stop()
        await provisioner.close()
        await pods.stop()
        await listener.stop()
        await agent.stop()
        await gateway.close()
        await admin.close()


EXECUTE_CONTENT = {"silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False,
                   "stop_on_error": True}


async def execute(kernel: Kernel, code: str, *, timeout: float = WAIT,
                  started: asyncio.Event | None = None) -> tuple[str, list[str]]:
    """Run ``code`` in the kernel through its ZMQ channels: ``(status or ename, text/plain results and streams)``.

    ``started`` is set at the first output of this request: the user's code runs (a SIGINT before that,
    between ipykernel's busy status and its installing the interrupt handler, would be ignored).
    """
    assert kernel.connection is not None
    async with KernelChannels(kernel.connection, channels=("shell", "iopub")) as channels:
        await channels.nudge(timeout)
        request = await channels.send("shell", "execute_request", {"code": code, **EXECUTE_CONTENT})
        msg_id = request["header"]["msg_id"]
        outputs: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await channels.recv("iopub", max(0.0, deadline - loop.time()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["header"]["msg_type"], msg["content"]
            if kind == "execute_result":
                outputs.append(content["data"]["text/plain"])
            elif kind == "stream":
                outputs.append(content["text"])
                if started is not None:
                    started.set()
            elif kind == "status" and content["execution_state"] == "idle":
                break
        while True:
            reply = await channels.recv("shell", max(0.0, deadline - loop.time()))
            if reply["parent_header"].get("msg_id") == msg_id:
                content = reply["content"]
                return (content["status"] if content["status"] == "ok" else content.get("ename", "error")), outputs


class StateLog:
    """Lifecycle states a kernel goes through, awaitable: ``await log.reach("autorestarting", "idle")``."""

    def __init__(self, kernel: Kernel) -> None:
        self.states: list[str] = []
        self._waiters: list[tuple[tuple[str, ...], asyncio.Future[None]]] = []
        kernel.add_listener(self._heard)

    def _heard(self, kernel: Kernel, state: str) -> None:
        self.states.append(state)
        for wanted, future in list(self._waiters):
            if not future.done() and _subsequence(wanted, self.states):
                future.set_result(None)

    async def reach(self, *states: str, timeout: float = WAIT) -> None:
        """Wait until the states heard so far contain ``states`` in this order."""
        if _subsequence(states, self.states):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (states, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            self._waiters.remove(entry)


def _subsequence(wanted: tuple[str, ...], heard: list[str]) -> bool:
    position = 0
    for state in heard:
        if position < len(wanted) and state == wanted[position]:
            position += 1
    return position == len(wanted)
