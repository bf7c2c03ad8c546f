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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
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
from gateway.cluster.interface import Cluster, NotFound, ServiceUnavailable, WatchEvent
from gateway.cluster.lease import LeaseElector, LeaseSettings
from gateway.kernels.admissions import ADMISSIONS_NAME, replica_admissions
from gateway.kernels.channels import KernelChannels
from gateway.kernels.kernel import Kernel
from gateway.kernels.records import RecordStore
from gateway.kernels.service import KernelService, Replica
from gateway.kernels.settings import KernelSettings
from gateway.kernels.specs import KernelSpecs
from gateway.objects import kernel_selector
from gateway.objects.record import RECORD_SELECTOR
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


async def eventually(check: Callable[[], Any], timeout: float = WAIT) -> Any:
    """The first truthy value of ``check()`` on a gateway's in-process state (no request), within ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        assert loop.time() < deadline, "the state was not reached in time"
        await asyncio.sleep(0.02)


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
class Stack:
    """One gateway's kernel side over a shared simulated cluster, as ``gateway.app`` composes it."""

    identity: str
    severable: SeverableCluster
    counting: CountingCluster
    pods: Informer
    records: Informer
    listener: ResponseListener
    provisioner: PodProvisioner
    lease: LeaseElector
    service: KernelService
    stopped: bool = False

    @property
    def api_calls(self) -> Counter[tuple[str, str]]:
        """Requests this gateway made to the cluster, by ``(verb, resource)`` (a watch counts when opened)."""
        return self.counting.calls

    def kernel_calls(self) -> dict[tuple[str, str], int]:
        """:attr:`api_calls` but the duties' Lease renewals, which are per gateway, not per kernel."""
        return {call: n for call, n in self.api_calls.items() if call[1] != "leases"}

    async def stop(self) -> None:
        """Stop as ``Gateway.stop`` does: the service, the provisioner, the Lease (released), informers, listener."""
        if self.stopped:
            return
        self.stopped = True
        await self.service.stop()
        await self.provisioner.close()
        await self.lease.stop()
        await self.records.stop()
        await self.pods.stop()
        await self.listener.stop()
        await self.counting.close()

    async def crash(self) -> None:
        """Die as at SIGKILL: from now on no request of this gateway reaches the cluster.

        The Lease is neither renewed nor released, no kernel is shut down, nothing is deleted:
        whatever the gateway's tasks still attempt is refused.  They are stopped for good when the
        shared cluster's block ends.
        """
        self.severable.sever()
        await self.lease.stop(release=False)
        self.service.settings = dataclasses.replace(self.service.settings, stop_timeout=0)


class SeverableCluster:
    """A cluster connection that :meth:`sever` cuts: every request then fails (a process killed mid-flight)."""

    def __init__(self, inner: Cluster) -> None:
        self.inner = inner
        self.severed = False

    def sever(self) -> None:
        self.severed = True

    def __getattr__(self, verb: str) -> Any:
        attribute = getattr(self.inner, verb)
        if verb.startswith("_") or verb == "close" or not callable(attribute):
            return attribute

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            self._check()
            return await attribute(*args, **kwargs)

        return guarded

    def watch(self, resource: str, **options: Any) -> AsyncIterator[WatchEvent]:
        return self._watch(resource, options)

    async def _watch(self, resource: str, options: dict[str, Any]) -> AsyncIterator[WatchEvent]:
        self._check()
        stream = self.inner.watch(resource, **options)
        try:
            async for event in stream:
                self._check()
                yield event
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    def _check(self) -> None:
        if self.severed:
            raise ServiceUnavailable("this gateway was killed")


@dataclass
class SharedCluster:
    """One simulated cluster (store, node agent) that several gateway stacks share."""

    mode: str
    tmp_path: Path
    store: Store
    admin: Cluster
    agent: NodeAgent
    images: Any
    spec_paths: tuple[Path, ...] = ()
    stacks: list[Stack] = field(default_factory=list)

    async def gateway(self, identity: str | None = None, *, ephemeral: bool = False, lease: dict[str, float] | None = None,
                      provisioning: dict[str, Any] | None = None, **settings: Any) -> Stack:
        """A started gateway stack named ``identity`` (a kernel service and what it runs on).

        ``ephemeral``: its stop shuts its kernels down (the embedded cluster's behaviour); otherwise
        they stay for the other gateways.  ``lease`` overrides :data:`FAST_LEASE`'s durations;
        ``provisioning`` :class:`ProvisionerSettings` fields; ``settings`` :class:`KernelSettings` fields.
        """
        identity = identity or f"gateway-{uuid.uuid4().hex[:6]}"
        severable = SeverableCluster(MemoryCluster(self.store, service_account_user(GATEWAY_NAMESPACE, GATEWAY_ACCOUNT)))
        counting = CountingCluster(severable)
        pods = Informer(counting, "pods", label_selector=kernel_selector())
        records = Informer(counting, "secrets", namespace=GATEWAY_NAMESPACE, label_selector=RECORD_SELECTOR)
        listener = ResponseListener(host="127.0.0.1", port=0)
        await listener.start()
        await pods.start()
        await records.start()
        provisioner = PodProvisioner(counting, pods, listener, ProvisionerSettings(
            gateway_namespace=GATEWAY_NAMESPACE, kernel_cluster_role=KERNEL_CLUSTER_ROLE,
            shared_namespace=(self.mode == "shared"), response_address=f"127.0.0.1:{listener.port}",
            **(provisioning or {})))
        specs = KernelSpecs([*self.spec_paths, repository_root() / "kernelspecs"], allowed=None, default_name=None,
                            authorized_users=frozenset(), unauthorized_users=frozenset({"root"}))
        kernel_settings = dataclasses.replace(
            KernelSettings(launch_timeout=WAIT, shutdown_wait_time=2.0, shut_down_kernels_at_stop=ephemeral),
            **settings)
        store = RecordStore(counting, records, GATEWAY_NAMESPACE)
        admissions = replica_admissions(counting, GATEWAY_NAMESPACE, store, kernel_settings)
        elector = LeaseElector(counting, LeaseSettings(namespace=GATEWAY_NAMESPACE, identity=identity,
                                                       **{**FAST_LEASE, **(lease or {})}))
        await elector.start()
        service = KernelService(provisioner, specs, kernel_settings, Replica(identity, store, admissions, elector))
        await service.start()
        stack = Stack(identity, severable, counting, pods, records, listener, provisioner, elector, service)
        self.stacks.append(stack)
        return stack

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

    async def admitted(self) -> dict[str, str]:
        """The admissions ConfigMap's data: admitted kernel id -> username."""
        try:
            found = await self.admin.get("configmaps", ADMISSIONS_NAME, namespace=GATEWAY_NAMESPACE)
        except NotFound:
            return {}
        return dict(found.get("data") or {})

    async def assert_nothing_left(self, kernel_id: str) -> None:
        """No pod, namespace, role binding, companion, record or admission of ``kernel_id`` remains; the user's
        namespace does."""
        for resource in ("pods", "namespaces", "rolebindings", "services", "configmaps", "secrets"):
            assert await self.labelled(resource, kernel_id) == [], f"{resource} of {kernel_id} left behind"
        assert kernel_id not in await self.admitted(), f"the admission of {kernel_id} left behind"
        assert await self.namespace_exists(USER_NAMESPACE)
        account = await self.admin.list("serviceaccounts", namespace=USER_NAMESPACE,
                                        field_selector=f"metadata.name={USER_ACCOUNT}")
        assert account["items"], "the user's service account was deleted"


FAST_LEASE = {"duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.5}
"""The duties' Lease timing of the tests' gateways (client-go's 15/10/2 s would outlast a test)."""


@contextlib.asynccontextmanager
async def shared_cluster(tmp_path: Path, *, mode: str = "own", spec_paths: tuple[Path, ...] = ()
                         ) -> AsyncIterator[SharedCluster]:
    """A fresh simulated cluster with the gateway's RBAC and a node agent; gateways are added with
    :meth:`SharedCluster.gateway` and all stopped when the block ends."""
    assert mode in MODES
    store = Store()
    admin = MemoryCluster(store)
    await install_gateway(admin)
    images = kernel_image_map()
    images.add(FAILING_IMAGE, script_image(tmp_path / f"failing-{uuid.uuid4().hex[:6]}.sh",
                                           'echo "no kernel today" >&2; exit 1'))
    images.add(SILENT_IMAGE, script_image(tmp_path / f"silent-{uuid.uuid4().hex[:6]}.sh", "exec sleep 300"))
    agent = node_agent(store, tmp_path / f"node-{uuid.uuid4().hex[:6]}", images=images)
    await agent.start()
    cluster = SharedCluster(mode, tmp_path, store, admin, agent, images, spec_paths)
    try:
        yield cluster
    finally:
        for stack in reversed(cluster.stacks):
            await stack.stop()
        await agent.stop()
        await admin.close()


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
    cluster: SharedCluster
    stack: Stack

    def env(self, **extra: str) -> dict[str, str]:
        """A client's env for this mode (``KERNEL_NAMESPACE`` + account in ``user`` mode)."""
        return client_env(self.mode, **extra)

    async def start(self, **extra: str) -> Kernel:
        return await self.service.start_kernel(name=None, env=self.env(**extra), username_fallback="gateway")

    async def labelled(self, resource: str, kernel_id: str) -> list[str]:
        return await self.cluster.labelled(resource, kernel_id)

    async def pods_of(self, kernel_id: str) -> list[dict[str, Any]]:
        return await self.cluster.pods_of(kernel_id)

    async def namespace_exists(self, name: str) -> bool:
        return await self.cluster.namespace_exists(name)

    async def assert_nothing_left(self, kernel_id: str) -> None:
        await self.cluster.assert_nothing_left(kernel_id)


def client_env(mode: str, **extra: str) -> dict[str, str]:
    """A client's env for ``mode`` (``KERNEL_NAMESPACE`` + account in ``user`` mode)."""
    env = {"KERNEL_USERNAME": "alice"}
    if mode == "user":
        env.update(KERNEL_NAMESPACE=USER_NAMESPACE, KERNEL_SERVICE_ACCOUNT_NAME=USER_ACCOUNT)
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def gateway_harness(tmp_path: Path, *, mode: str = "own", spec_paths: tuple[Path, ...] = (),
                          **settings: Any) -> AsyncIterator[Harness]:
    """The kernel service over a fresh simulated cluster; ``settings`` override :class:`KernelSettings` fields.

    ``spec_paths`` are searched for kernelspecs before the shipped ones.  The gateway alone on its
    cluster, it holds the duties' Lease; its stop shuts its kernels down, as on the embedded cluster.
    """
    async with shared_cluster(tmp_path, mode=mode, spec_paths=spec_paths) as cluster:
        stack = await cluster.gateway("gateway-0", ephemeral=True, **settings)
        yield Harness(mode, cluster.store, cluster.admin, cluster.agent, stack.pods, stack.provisioner,
                      stack.service.specs, stack.service, stack.api_calls, cluster, stack)


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
