"""The gateway deployed as operators deploy it, on the simulated API server, acting as its service account.

Used by ``tests/test_least_privilege.py``.  :func:`deployed` starts the
simulated cluster, applies ``manifests/enterprise-gateway.yaml`` and the
``kernel-namespace`` overlay with the real kubectl, asks the TokenRequest API
(``kubectl create token``, see ``tests/kubectlclient.py``) for a token of ``enterprise-gateway-sa`` and
connects the real adapter (``gateway.cluster.kubernetes``) with it, so every
call the gateway makes is authorized by the RBAC the manifests grant.  A node
agent runs kernel images as this repository's launcher; ``FAILING_IMAGE``
exits at once, for launches that only need to get as far as a running pod.

With ``place="kube"`` the cluster is a new real control plane (``e2e.kube``) instead, its node
agent (a process of its own) given ``FAILING_IMAGE`` too, and the administrator a service
account bound to ``cluster-admin`` (:class:`KubeAccess`), so that kubectl's kubeconfig has the
same contexts on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from e2e.kube.fixture import require_built
from e2e.kube.launcher import ControlPlane
from fakes.apiserver import kubeconfig as fake_kubeconfig
from fakes.apiserver.kubeconfig import context_for
from fakes.manifests import GATEWAY_CLUSTER_ROLE, MANIFEST, gateway_rules
from fakes.memory import MemoryCluster
from fakes.node.kernel_images import kernel_image_map, repository_root
from fakes.serve import SimulatedCluster
from gateway.aio import Backoff
from gateway.cluster.informer import Informer
from gateway.cluster.interface import Cluster
from gateway.cluster.kubernetes import KubernetesCluster
from gateway.objects import kernel_selector
from gateway.provisioner import LaunchRequest, PodProvisioner, ProvisionerSettings, ResponseListener, kernel_spec_info
from tests import kubectlclient
from tests.kubectlclient import Kubectl
from tests.node import node_agent, script_image

GATEWAY_NAMESPACE = "enterprise-gateway"
GATEWAY_ACCOUNT = "enterprise-gateway-sa"
KERNEL_CLUSTER_ROLE = "kernel-controller"
KERNEL_NAMESPACE = "kernel-ns"
"""The pre-created kernel namespace of the ``kernel-namespace`` overlay, with its account ``kernel-sa``."""
KERNEL_ACCOUNT = "kernel-sa"
RBAC = "rbac.authorization.k8s.io"
TESTS_ADMIN = "kernelgate-tests-admin"
"""On a real control plane: the ``cluster-admin`` service account the tests' kubeconfig names as its admin."""
KERNEL_NAMESPACE_OVERLAY = MANIFEST.parent / "overlays" / "kernel-namespace"
KERNEL_NAMESPACE_OBJECTS = MANIFEST.parent / "components" / "kernel-namespace" / "kernel-namespace.yaml"
"""What the overlay adds to the base: applied as a file where kubectl's kustomize predates components."""
SPEC = kernel_spec_info("python_kubernetes", repository_root() / "kernelspecs" / "python_kubernetes")
FAILING_IMAGE = "test/failing-kernel:1"
FAILING_OUTPUT = "no kernel today"
WAIT = 60.0
"""Bound on a kernel start (or a kubectl call) on a loaded machine."""
KERNEL_RESOURCES = ("pods", "namespaces", "rolebindings", "services", "configmaps", "secrets",
                    "persistentvolumeclaims")
"""Every kind the gateway creates for a kernel (all labelled with its ``kernel_id``)."""


class KubeAccess:
    """A real control plane as the tests reach it: what they use of a :class:`SimulatedCluster`.

    ``admin_token`` is a token of a ``cluster-admin`` service account; :meth:`write_kubeconfig`
    writes the same kubeconfig a simulated cluster does (an admin context, one per user).
    """

    store = None
    """No store to inject faults into: the tests that need one skip here."""

    def __init__(self, plane: ControlPlane, admin_token: str) -> None:
        self.plane = plane
        self.url = plane.url
        self.ca_pem = plane.ca_path.read_bytes()
        self.kubeconfig_path = plane.work_dir / "tests.kubeconfig"
        self.admin_token = admin_token
        self._users: dict[str, str] = {}

    def write_kubeconfig(self, path: str | Path | None = None, **users: str) -> Path:
        """(Re)write a kubeconfig for this cluster: the admin plus ``users`` (name -> token)."""
        self._users.update(users)
        return fake_kubeconfig.write(path or self.kubeconfig_path, self.url, self.ca_pem, self.admin_token,
                                     users=self._users)


PLACES = {"memory": "simulated", "apiserver": "simulated", "kube": "kube"}
"""Where a deployment goes, by ``--cluster`` name: the simulated API server serves both simulated targets."""


def places(config: Any) -> list[str]:
    """The places ``--cluster`` names (``simulated``, ``kube``), each once, for the tests' ``place`` parameter."""
    names = [n.strip() for n in str(config.getoption("clusters")).split(",")]
    return list(dict.fromkeys(PLACES[n] for n in names if n in PLACES))


def parametrize_places(metafunc: pytest.Metafunc) -> None:
    """``pytest_generate_tests`` of a module whose tests take a ``place``: its tests run once per place."""
    if "place" in metafunc.fixturenames:
        metafunc.parametrize("place", places(metafunc.config), scope="module")


@dataclass
class Deployment:
    """One deployed gateway: ``gateway`` is the adapter authenticated as ``enterprise-gateway-sa``."""

    cluster: SimulatedCluster | KubeAccess
    kubectl: Kubectl
    admin: Cluster
    gateway: KubernetesCluster
    pods: Informer
    listener: ResponseListener
    settings: ProvisionerSettings
    work_dir: Path
    provisioners: list[PodProvisioner] = field(default_factory=list)

    def provisioner(self, **changes: Any) -> PodProvisioner:
        """A provisioner acting as the gateway (its settings changed by ``changes``)."""
        provisioner = PodProvisioner(self.gateway, self.pods, self.listener, replace(self.settings, **changes))
        self.provisioners.append(provisioner)
        return provisioner

    @staticmethod
    def request(*, username: str = "alice", spec: Any = SPEC, timeout: float = WAIT, **env: str) -> LaunchRequest:
        kernel_id = str(uuid.uuid4())
        return LaunchRequest(kernel_id=kernel_id, username=username, spec=spec,
                             env={"KERNEL_USERNAME": username, **env}, timeout=timeout)


@contextlib.asynccontextmanager
async def simulated_cluster(work_dir: Path) -> AsyncIterator[tuple[SimulatedCluster, Cluster]]:
    """The simulated API server, its administrator, and a node agent running kernel images and ``FAILING_IMAGE``."""
    async with SimulatedCluster(state_dir=work_dir / "state", node_agent=False) as cluster:
        admin = MemoryCluster(cluster.store)
        images = kernel_image_map()
        images.add(FAILING_IMAGE, script_image(work_dir / "failing.sh", f'echo "{FAILING_OUTPUT}" >&2; exit 1'))
        agent = node_agent(cluster.store, work_dir / "node", images=images, api_server_url=cluster.url)
        await agent.start()
        try:
            yield cluster, admin
        finally:
            await agent.stop()
            await admin.close()


@contextlib.asynccontextmanager
async def kube_cluster(work_dir: Path) -> AsyncIterator[tuple[KubeAccess, Cluster]]:
    """A new real control plane whose node also runs ``FAILING_IMAGE``, and its administrator."""
    require_built()
    images = work_dir / "images.yaml"
    images.write_text(yaml.safe_dump({"images": {FAILING_IMAGE: {
        "cmd": ["sh", "-c", f'echo "{FAILING_OUTPUT}" >&2; exit 1'], "env": {"PATH": "/usr/bin:/bin"}}}}))
    plane = ControlPlane(images=images)
    await asyncio.to_thread(plane.start)
    try:
        admin = await asyncio.to_thread(KubernetesCluster.from_kubeconfig, str(plane.admin_kubeconfig))
        try:
            await admin.create("serviceaccounts", {"metadata": {"name": TESTS_ADMIN}}, namespace="kube-system")
            await admin.create("clusterrolebindings", {
                "metadata": {"name": TESTS_ADMIN},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": TESTS_ADMIN, "namespace": "kube-system"}]})
            token = await admin.create_token(TESTS_ADMIN, "kube-system", expiration_seconds=24 * 3600)
            access = KubeAccess(plane, token)
            await asyncio.to_thread(access.write_kubeconfig)
            yield access, admin
        finally:
            await admin.close()
    finally:
        await asyncio.to_thread(plane.stop)


@contextlib.asynccontextmanager
async def deployed(work_dir: Path, place: str = "simulated") -> AsyncIterator[Deployment]:
    """Cluster up, manifests applied, the gateway's parts running as its service account (see the module docstring).

    ``place``: ``simulated``, or ``kube`` for a real control plane.
    """
    opened = kube_cluster(work_dir) if place == "kube" else simulated_cluster(work_dir)
    async with opened as (cluster, admin):
        kubectl = Kubectl(cluster.kubeconfig_path, work_dir / "kubectl-cache")
        await kubectl("apply", "-f", str(MANIFEST))
        if kubectlclient.has(kubectlclient.KUSTOMIZE_COMPONENTS):
            await kubectl("apply", "-k", str(KERNEL_NAMESPACE_OVERLAY))
        else:
            await kubectl("apply", "-f", str(KERNEL_NAMESPACE_OBJECTS))
        token = await kubectl.token(GATEWAY_ACCOUNT, GATEWAY_NAMESPACE)
        path = await asyncio.to_thread(cluster.write_kubeconfig, None, gateway=token)
        gateway = await asyncio.to_thread(KubernetesCluster.from_kubeconfig, str(path), context_for("gateway"))
        pods = Informer(gateway, "pods", label_selector=kernel_selector())
        listener = ResponseListener(host="127.0.0.1", port=0)
        try:
            await listener.start()
            await pods.start()
            settings = ProvisionerSettings(gateway_namespace=GATEWAY_NAMESPACE, kernel_cluster_role=KERNEL_CLUSTER_ROLE,
                                           response_address=f"127.0.0.1:{listener.port}")
            deployment = Deployment(cluster, kubectl, admin, gateway, pods, listener, settings, work_dir)
            try:
                yield deployment
            finally:
                for provisioner in deployment.provisioners:
                    await provisioner.close()
        finally:
            await pods.stop()
            await listener.stop()
            await gateway.close()


# --------------------------------------------------------------------------- the gateway's role, edited


def rules_without(rules: list[dict[str, Any]], resource: str, verb: str) -> list[dict[str, Any]]:
    """``rules`` with ``verb`` on ``resource`` taken away, every other grant kept."""
    out = []
    for rule in rules:
        if resource not in rule["resources"] or verb not in rule["verbs"]:
            out.append(rule)
            continue
        others = [r for r in rule["resources"] if r != resource]
        if others:
            out.append({**rule, "resources": others})
        verbs = [v for v in rule["verbs"] if v != verb]
        if verbs:
            out.append({**rule, "resources": [resource], "verbs": verbs})
    return out


async def set_gateway_rules(admin: Cluster, rules: list[dict[str, Any]]) -> None:
    role = await admin.get("clusterroles", GATEWAY_CLUSTER_ROLE)
    role["rules"] = rules
    await admin.replace("clusterroles", GATEWAY_CLUSTER_ROLE, role)


async def in_effect(granted: Callable[[], Awaitable[bool]], expected: bool) -> None:
    """Return once ``granted()`` answers ``expected``: a real API server's authorizer follows a role change
    from its informer a moment after the write (nothing to watch for it: a bounded retry with back-off)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    backoff = Backoff(base=0.05, cap=0.5)
    while await granted() != expected:
        assert loop.time() < deadline, f"the role change was not in effect within {WAIT:.0f}s"
        await asyncio.sleep(backoff.fail())


@contextlib.asynccontextmanager
async def gateway_role_without(admin: Cluster, resource: str, verb: str,
                               granted: Callable[[], Awaitable[bool]] | None = None) -> AsyncIterator[None]:
    """The manifests' gateway ClusterRole minus one verb on one resource, restored afterwards.

    ``granted()`` (whether the gateway may, now) is awaited to say no, then yes again after the restore.
    """
    reduced = rules_without(gateway_rules(), resource, verb)
    assert reduced != gateway_rules(), f"the role grants no {verb} on {resource}"
    await set_gateway_rules(admin, reduced)
    try:
        if granted is not None:
            await in_effect(granted, False)
        yield
    finally:
        await set_gateway_rules(admin, gateway_rules())
        if granted is not None:
            await in_effect(granted, True)


# --------------------------------------------------------------------------- observing the cluster and the logs


async def leftovers(admin: Cluster, kernel_id: str) -> list[str]:
    """``resource/namespace/name`` of the kernel's objects still there and not being deleted."""
    found = []
    for resource in KERNEL_RESOURCES:
        listing = await admin.list(resource, label_selector=f"kernel_id={kernel_id}")
        for obj in listing["items"]:
            meta = obj["metadata"]
            if not meta.get("deletionTimestamp"):
                found.append(f"{resource}/{meta.get('namespace', '')}/{meta['name']}")
    return found


async def remove_leftovers(admin: Cluster, kernel_id: str) -> None:
    """Delete what a scenario with too few permissions left behind (as the admin), so later ones start clean."""
    for resource in KERNEL_RESOURCES:
        listing = await admin.list(resource, label_selector=f"kernel_id={kernel_id}")
        for obj in listing["items"]:
            meta = obj["metadata"]
            with contextlib.suppress(Exception):
                await admin.delete(resource, meta["name"], namespace=meta.get("namespace"), grace_period_seconds=0)


class Complaints(logging.Handler):
    """Warnings and errors the gateway logs; ``arrived`` is set at the first."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.arrived = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.arrived.set()


@contextlib.contextmanager
def complaints(*loggers: str) -> Iterator[Complaints]:
    """Collect what ``loggers`` (default: the provisioner's and the informer's) warn about meanwhile."""
    handler = Complaints()
    targets = [logging.getLogger(name) for name in loggers or ("gateway.provisioner", "gateway.cluster.informer")]
    for target in targets:
        target.addHandler(handler)
    try:
        yield handler
    finally:
        for target in targets:
            target.removeHandler(handler)


@pytest_asyncio.fixture(loop_scope="module", scope="module", name="deployment")
async def deployment_fixture(tmp_path_factory: pytest.TempPathFactory, place: str) -> AsyncIterator[Deployment]:
    """The gateway deployed once per module at ``place`` (a module imports this fixture to use it)."""
    async with deployed(tmp_path_factory.mktemp("deployed"), place) as d:
        yield d
