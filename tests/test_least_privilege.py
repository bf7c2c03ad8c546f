"""The gateway works with exactly the permissions ``manifests/`` grants it, and needs every one of them.

The manifests are applied to the simulated API server with kubectl, and the
gateway runs as ``enterprise-gateway-sa`` (a TokenRequest token, the real
adapter, RBAC enforced; see ``tests/deployedharness.py``):

* the whole gateway (``gateway.app``) starts, restarts and shuts down kernels
  over HTTP and runs code in them, in the three namespace modes;
* each verb of each resource of the ``enterprise-gateway-controller``
  ClusterRole is taken away in turn, and a scenario of the gateway's own code
  paths (provisioner, informer) that goes right with the full role goes wrong
  without that verb; :data:`CASES` is read from the manifest, so a new grant
  without a scenario proving it fails :func:`test_every_grant_has_a_scenario`;
* the same for each verb of the ``enterprise-gateway`` Role in the gateway's
  own namespace (:data:`NAMESPACE_CASES`): the records informer, record
  writes, the duties' Lease and the admissions ledger;
* a kernel's service account, bound to ``kernel-controller`` in its namespace
  by the gateway, can do nothing in any other namespace.

With ``--cluster=kube`` it all runs on a new real control plane instead (``e2e.kube``), but the
scenarios of a create answered 500 although stored, which need the simulated store's faults.

Most scenarios launch ``FAILING_IMAGE``, whose container exits at once: the
launch then makes every API call of a real one up to a running pod and ends
with ``PodFailed``, quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from tornado.httpclient import AsyncHTTPClient

from fakes.apiserver import kubeconfig as fake_kubeconfig
from fakes.apiserver.kubeconfig import context_for
from fakes.manifests import GATEWAY_ROLE, gateway_rules, manifest_object, namespace_rules
from gateway.app import Gateway
from gateway.cluster.informer import Informer
from gateway.cluster.interface import Cluster, ClusterError, Forbidden, NotFound, ServerError
from gateway.cluster.kubernetes import KubernetesCluster
from gateway.cluster.lease import LeaseElector, LeaseSettings
from gateway.config import GatewayConfig
from gateway.kernels.admissions import ADMISSIONS_NAME, Admissions
from gateway.kernels.records import RecordStore
from gateway.objects import kernel_labels, kernel_resource_name, kernel_selector
from gateway.objects.record import (
    RECORD_SELECTOR,
    KernelRecord,
    NamespaceMode,
    Phase,
    RecordPlacement,
    parse_record,
    record_name,
    record_secret,
)
from gateway.provisioner import LaunchError, LaunchRequest, PodFailed, kernel_spec_info
from tests import kubectlclient
from tests.deployedharness import (
    FAILING_IMAGE,
    FAILING_OUTPUT,
    GATEWAY_NAMESPACE,
    KERNEL_ACCOUNT,
    KERNEL_CLUSTER_ROLE,
    KERNEL_NAMESPACE,
    RBAC,
    SPEC,
    WAIT,
    Deployment,
    complaints,
    deployment_fixture,  # noqa: F401 (the module's ``deployment`` fixture, which pytest finds by name)
    gateway_role_without,
    in_effect,
    leftovers,
    parametrize_places,
    remove_leftovers,
    rules_without,
)
from tests.httpharness import RunningGateway, execute

pytestmark = [
    pytest.mark.slow,
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]
in_module_loop = pytest.mark.asyncio(loop_scope="module")
"""Async tests share the module's event loop, where the deployment fixture runs."""

CASES = [(resource, verb) for rule in gateway_rules() for resource in rule["resources"] for verb in rule["verbs"]
         if resource != "events"]
"""Every grant of the manifests' gateway ClusterRole, as ``(resource, verb)``; those on ``events`` are proven by
``tests/test_least_privilege_events.py``."""
NAMESPACE_CASES = [(resource, verb) for rule in namespace_rules() for resource in rule["resources"]
                   for verb in rule["verbs"]]
"""Every grant of the manifests' ``enterprise-gateway`` Role (the gateway's own namespace), as ``(resource, verb)``."""
COMPANIONS = ("configmaps", "secrets", "services", "persistentvolumeclaims")
"""The kinds a kernel-pod.yaml may declare next to the pod."""
COMPANION_TEMPLATE = """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm-$kernel_id}
data: {mode: test}
---
apiVersion: v1
kind: Secret
metadata: {name: secret-$kernel_id}
stringData: {token: test}
---
apiVersion: v1
kind: Service
metadata: {name: svc-$kernel_id}
spec:
  ports: [{port: 8888}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: pvc-$kernel_id}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Mi}}
"""
"""Appended to the python_kubernetes pod template: one companion of each kind the gateway may create."""
COMPANION_PREFIX = {"configmaps": "cm", "secrets": "secret", "services": "svc", "persistentvolumeclaims": "pvc"}


pytest_generate_tests = parametrize_places


@pytest.fixture(scope="module")
def companion_spec(tmp_path_factory):
    """python_kubernetes with a ConfigMap, Secret, Service and PVC next to the pod in its template."""
    folder = tmp_path_factory.mktemp("kernelspecs") / "python_companions"
    shutil.copytree(SPEC.resource_dir, folder)
    template = folder / "scripts" / "kernel-pod.yaml"
    template.write_text(template.read_text() + COMPANION_TEMPLATE)
    return kernel_spec_info("python_companions", folder)


# --------------------------------------------------------------------------- scenarios


@dataclass
class Outcome:
    """What a user or operator sees of one scenario."""

    error: BaseException | None
    left: list[str]
    """The kernel's objects still there afterwards."""
    complaints: list[str]
    """Warnings and errors the gateway logged meanwhile."""
    kernel_id: str = ""
    seen: frozenset[str] = field(default_factory=frozenset)
    """What the scenario saw happen in the cluster (``leading``, ``released``, ``admitted``...)."""


def request_for(mode: str, **kwargs: Any) -> LaunchRequest:
    env = {"KERNEL_IMAGE": FAILING_IMAGE}
    if mode == "user":
        env.update(KERNEL_NAMESPACE=KERNEL_NAMESPACE, KERNEL_SERVICE_ACCOUNT_NAME=KERNEL_ACCOUNT)
    return Deployment.request(**kwargs, **env)


def namespace_of(mode: str, request: LaunchRequest) -> str:
    return {"own": kernel_resource_name(request.username, request.kernel_id), "shared": GATEWAY_NAMESPACE,
            "user": KERNEL_NAMESPACE}[mode]


async def launch(d: Deployment, mode: str, request: LaunchRequest) -> Outcome:
    """Launch as the gateway; a kernel that does start is stopped and released again."""
    provisioner = d.provisioner(shared_namespace=(mode == "shared"))
    error: BaseException | None = None
    with complaints() as logged:
        try:
            running = await provisioner.launch(request)
        except LaunchError as exc:
            error = exc
        else:
            await provisioner.stop(running, grace_seconds=0)
            await provisioner.release(running.placement)
    return Outcome(error, await leftovers(d.admin, request.kernel_id), logged.lines, request.kernel_id)


def failing_launch(mode: str, *, with_companions: bool = False) -> Callable[..., Awaitable[Outcome]]:
    async def scenario(d: Deployment, companion_spec: Any) -> Outcome:
        spec = companion_spec if with_companions else SPEC
        return await launch(d, mode, request_for(mode, spec=spec))
    return scenario


def account_not_there_yet(mode: str) -> Callable[..., Awaitable[Outcome]]:
    """A launch in a new namespace whose service account is not there yet when the pod is created, nor at
    the read that follows (the service-account controller has not made it yet): the gateway watches for it,
    then creates the pod again."""
    async def scenario(d: Deployment, companion_spec: Any) -> Outcome:
        if d.cluster.store is None:
            pytest.skip("an account missing at the pod's creation is injected into the simulated store")
        request = request_for(mode, spec=SPEC)
        namespace = namespace_of(mode, request)
        refusal = (f'pods "{kernel_resource_name(request.username, request.kernel_id)}" is forbidden: error looking '
                   f'up service account {namespace}/default: serviceaccount "default" not found')
        d.cluster.store.faults.inject("create", "pods", error=Forbidden(refusal), times=1, namespace=namespace)
        d.cluster.store.faults.inject("get", "serviceaccounts", error=NotFound('serviceaccounts "default" not found'),
                                      times=1, namespace=namespace)
        return await launch(d, mode, request)
    return scenario


def unanswered_create(resource: str, mode: str) -> Callable[..., Awaitable[Outcome]]:
    """A launch whose create of ``resource`` fails with a 500 although the object was stored.

    The object is put there first (as the API server may store one and still
    lose the answer); the gateway must find it, see the kernel's label and
    delete it.
    """
    async def scenario(d: Deployment, companion_spec: Any) -> Outcome:
        if d.cluster.store is None:
            pytest.skip("a create answered 500 although stored is injected into the simulated store")
        request = request_for(mode, spec=companion_spec if resource in COMPANIONS else SPEC)
        namespace = namespace_of(mode, request)
        if resource != "rolebindings":  # a role binding's namespace is created by the same launch
            await d.admin.create(resource, stored_object(resource, request), namespace=namespace)
        d.cluster.store.faults.inject("create", resource, error=ServerError("etcdserver: request timed out"),
                                      times=1, namespace=namespace)
        return await launch(d, mode, request)
    return scenario


def stored_object(resource: str, request: LaunchRequest) -> dict[str, Any]:
    """The object of ``resource`` the launch of ``request`` creates, as far as its name and labels go."""
    labels = kernel_labels(request.kernel_id)
    if resource == "pods":
        name = kernel_resource_name(request.username, request.kernel_id)
        # Bound to a node of its own: no node agent here touches it.
        return {"metadata": {"name": name, "labels": labels},
                "spec": {"restartPolicy": "Never", "nodeName": "elsewhere",
                         "containers": [{"name": name, "image": FAILING_IMAGE}]}}
    body: dict[str, Any] = {"metadata": {"name": f"{COMPANION_PREFIX[resource]}-{request.kernel_id}", "labels": labels}}
    if resource == "services":
        body["spec"] = {"ports": [{"port": 8888}]}
    if resource == "persistentvolumeclaims":
        body["spec"] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}
    return body


def gateway_informer(d: Deployment, watched: str) -> Informer:
    """One of the gateway's two informers, as ``gateway.app`` makes it: kernel ``pods`` or kernel records."""
    if watched == "pods":
        return Informer(d.gateway, "pods", label_selector=kernel_selector())
    return Informer(d.gateway, "secrets", namespace=GATEWAY_NAMESPACE, label_selector=RECORD_SELECTOR)


def a_record(request: LaunchRequest) -> KernelRecord:
    """A kernel record as a launch of ``request`` in the shared namespace first writes it."""
    now = datetime.now(timezone.utc)
    placement = RecordPlacement(namespace=GATEWAY_NAMESPACE, mode=NamespaceMode.SHARED, service_account="default",
                                pod_name=kernel_resource_name(request.username, request.kernel_id))
    return KernelRecord(kernel_id=request.kernel_id, kernelspec=SPEC.name, username=request.username,
                        env=dict(request.env), launch_timeout=request.timeout, placement=placement,
                        phase=Phase.LAUNCHING, actor="least-privilege", launched_at=now,
                        launch_deadline=now + timedelta(hours=1), last_activity=now)


def informer_start(watched: str) -> Callable[..., Awaitable[Outcome]]:
    """The gateway's informer of ``watched`` starting (its first call: a list)."""
    async def scenario(d: Deployment, companion_spec: Any) -> Outcome:
        informer = gateway_informer(d, watched)
        error: BaseException | None = None
        try:
            await asyncio.wait_for(informer.start(), WAIT)
        except ClusterError as exc:
            error = exc
        finally:
            await informer.stop()
        return Outcome(error, [], [])
    return scenario


def informer_follows(watched: str) -> Callable[..., Awaitable[Outcome]]:
    """A started informer of ``watched`` learns of an object created afterwards (or complains that it cannot)."""
    async def scenario(d: Deployment, companion_spec: Any) -> Outcome:
        informer = gateway_informer(d, watched)
        request = request_for("shared")
        if watched == "pods":
            obj = stored_object("pods", request)
        else:
            obj = record_secret(a_record(request), GATEWAY_NAMESPACE)
        with complaints("gateway.cluster.informer") as logged:
            await asyncio.wait_for(informer.start(), WAIT)
            try:
                await d.admin.create(watched, obj, namespace=GATEWAY_NAMESPACE)
                seen = asyncio.ensure_future(informer.wait_for(
                    lambda o: o is not None, namespace=GATEWAY_NAMESPACE, name=obj["metadata"]["name"], timeout=WAIT))
                complained = asyncio.ensure_future(logged.arrived.wait())
                await asyncio.wait({seen, complained}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
                for task in (seen, complained):
                    task.cancel()
                await asyncio.gather(seen, complained, return_exceptions=True)
                error = None if seen.done() and not seen.cancelled() and seen.exception() is None else \
                    Forbidden(" ".join(logged.lines) or f"the informer never saw the {watched}")
            finally:
                await informer.stop()
                await remove_leftovers(d.admin, request.kernel_id)
        return Outcome(error, [], logged.lines)
    return scenario


async def record_writes(d: Deployment, companion_spec: Any) -> Outcome:
    """A replica claims a kernel's record (``replace``) and records its activity (``modify``), as the gateway does.

    The record is created as the gateway creates it; the store's cache is the administrator's
    informer, so that only the writes depend on the gateway's grants.
    """
    request = request_for("shared")
    cache = Informer(d.admin, "secrets", namespace=GATEWAY_NAMESPACE, label_selector=RECORD_SELECTOR)
    await cache.start()
    error: BaseException | None = None
    later = datetime.now(timezone.utc) + timedelta(minutes=1)
    try:
        store = RecordStore(d.gateway, cache, GATEWAY_NAMESPACE)
        created = await store.create(a_record(request))
        try:
            await store.replace(dataclasses.replace(created, phase=Phase.TERMINATING, actor="another replica"))
            await store.modify(request.kernel_id, lambda r: dataclasses.replace(r, last_activity=later))
        except ClusterError as exc:
            error = exc
        stored = parse_record(await d.admin.get("secrets", record_name(request.kernel_id),
                                                namespace=GATEWAY_NAMESPACE))
    finally:
        await cache.stop()
        await remove_leftovers(d.admin, request.kernel_id)
    seen = set()
    if stored.phase is Phase.TERMINATING and stored.actor == "another replica":
        seen.add("claimed")
    if stored.last_activity == later:
        seen.add("active")
    return Outcome(error, [], [], seen=frozenset(seen))


async def duties_lease(d: Deployment, companion_spec: Any) -> Outcome:
    """A replica contends for the duties' Lease (absent at first: created), leads, and releases it at stop."""
    name = f"duties-{uuid.uuid4().hex[:8]}"
    settings = LeaseSettings(namespace=GATEWAY_NAMESPACE, identity="least-privilege", name=name,
                             duration=10.0, renew_deadline=5.0, retry_period=2.0)
    elector = LeaseElector(d.gateway, settings)
    seen = set()
    with complaints("gateway.cluster.lease") as logged:
        try:
            await asyncio.wait_for(elector.start(), WAIT)
            if elector.leading:
                seen.add("leading")
        finally:
            await elector.stop()
    try:
        lease = await d.admin.get("leases", name, namespace=GATEWAY_NAMESPACE)
    except NotFound:
        lease = None
    if lease is not None:
        if not lease["spec"].get("holderIdentity"):
            seen.add("released")
        await d.admin.delete("leases", name, namespace=GATEWAY_NAMESPACE)
    error = Forbidden(" ".join(logged.lines)) if logged.lines else None
    return Outcome(error, [], logged.lines, seen=frozenset(seen))


async def ledger_admission(d: Deployment, companion_spec: Any) -> Outcome:
    """A kernel admitted against the limits in the admissions ConfigMap (read, checked, replaced)."""
    kernel_id = str(uuid.uuid4())
    admissions = Admissions(d.gateway, GATEWAY_NAMESPACE, lambda _: True)
    error: BaseException | None = None
    try:
        await admissions.ensure()
        await admissions.admit(kernel_id, "alice", max_kernels=None, max_per_user=None)
    except ClusterError as exc:
        error = exc
    ledger = await d.admin.get("configmaps", ADMISSIONS_NAME, namespace=GATEWAY_NAMESPACE)
    admitted = kernel_id in (ledger.get("data") or {})
    if admitted:
        del ledger["data"][kernel_id]
        await d.admin.replace("configmaps", ADMISSIONS_NAME, ledger, namespace=GATEWAY_NAMESPACE)
    return Outcome(error, [], [], seen=frozenset({"admitted"} if admitted else ()))


SCENARIOS: dict[str, Callable[..., Awaitable[Outcome]]] = {
    "shared-namespace launch": failing_launch("shared"),
    "own-namespace launch": failing_launch("own"),
    "own-namespace launch, account not there yet": account_not_there_yet("own"),
    "kernel-namespace launch": failing_launch("user"),
    # Companions in a kernel namespace: in the gateway's own namespace its Role grants secrets and
    # configmaps too, and taking the ClusterRole's grant away would prove nothing.
    "launch with companions": failing_launch("user", with_companions=True),
    "unanswered pod create": unanswered_create("pods", "shared"),
    "unanswered role binding create": unanswered_create("rolebindings", "own"),
    **{f"unanswered {r} create": unanswered_create(r, "user") for r in COMPANIONS},
    "informer start": informer_start("pods"),
    "informer follows pods": informer_follows("pods"),
}
NAMESPACE_SCENARIOS: dict[str, Callable[..., Awaitable[Outcome]]] = {
    "records informer start": informer_start("secrets"),
    "records informer follows records": informer_follows("secrets"),
    "record writes": record_writes,
    "duties lease": duties_lease,
    "ledger admission": ledger_admission,
}
"""The gateway's calls in its own namespace, made as its account (:data:`NAMESPACE_PROOFS`)."""


# --------------------------------------------------------------------------- what must hold


Check = Callable[[Outcome], bool]


def reaches_the_pod(o: Outcome) -> bool:
    """Every API call up to a running pod went through: the launch fails only because the container exits."""
    return isinstance(o.error, PodFailed)


def leaves_nothing(o: Outcome) -> bool:
    return not o.left


def reports_the_log_tail(o: Outcome) -> bool:
    return isinstance(o.error, PodFailed) and FAILING_OUTPUT in str(o.error)


def cleans_up_without_complaint(resource: str) -> Check:
    def check(o: Outcome) -> bool:
        return not o.left and not any(resource in line for line in o.complaints)
    check.__name__ = f"cleans_up_{resource}_without_complaint"
    return check


def succeeds(o: Outcome) -> bool:
    return o.error is None


def sees(*facts: str) -> Check:
    def check(o: Outcome) -> bool:
        return o.error is None and set(facts) <= o.seen
    check.__name__ = f"sees_{'_and_'.join(facts)}"
    return check


PROOFS: dict[tuple[str, str], tuple[str, Check]] = {
    ("pods", "create"): ("shared-namespace launch", reaches_the_pod),
    ("pods", "delete"): ("shared-namespace launch", leaves_nothing),
    ("pods", "get"): ("unanswered pod create", leaves_nothing),
    ("pods", "list"): ("informer start", succeeds),
    ("pods", "watch"): ("informer follows pods", succeeds),
    ("pods/log", "get"): ("shared-namespace launch", reports_the_log_tail),
    ("namespaces", "create"): ("own-namespace launch", reaches_the_pod),
    ("namespaces", "delete"): ("own-namespace launch", leaves_nothing),
    ("namespaces", "get"): ("kernel-namespace launch", reaches_the_pod),
    ("serviceaccounts", "get"): ("kernel-namespace launch", reaches_the_pod),
    ("serviceaccounts", "watch"): ("own-namespace launch, account not there yet", reaches_the_pod),
    ("rolebindings", "create"): ("own-namespace launch", reaches_the_pod),
    ("rolebindings", "delete"): ("own-namespace launch", cleans_up_without_complaint("rolebindings")),
    ("rolebindings", "get"): ("unanswered role binding create", cleans_up_without_complaint("rolebindings")),
    ("clusterroles", "bind"): ("own-namespace launch", reaches_the_pod),
    **{(r, "create"): ("launch with companions", reaches_the_pod) for r in COMPANIONS},
    **{(r, "delete"): ("launch with companions", cleans_up_without_complaint(r)) for r in COMPANIONS},
    **{(r, "get"): (f"unanswered {r} create", leaves_nothing) for r in COMPANIONS},
}
"""For each grant: the scenario that needs it, and what goes wrong there without it."""
NAMESPACE_PROOFS: dict[tuple[str, str], tuple[str, Check]] = {
    ("secrets", "list"): ("records informer start", succeeds),
    ("secrets", "watch"): ("records informer follows records", succeeds),
    ("secrets", "update"): ("record writes", sees("claimed", "active")),
    ("leases", "create"): ("duties lease", sees("leading")),
    ("leases", "get"): ("duties lease", sees("leading")),
    ("leases", "update"): ("duties lease", sees("leading", "released")),
    ("configmaps", "update"): ("ledger admission", sees("admitted")),
}
"""The same for each grant of the ``enterprise-gateway`` Role in the gateway's namespace."""


async def may(d: Deployment, resource: str, verb: str) -> bool:
    """Whether the gateway's account may ``verb`` ``resource`` (of the kernel ClusterRole, for ``bind``)."""
    base, _, sub = resource.partition("/")
    group = RBAC if base in ("rolebindings", "clusterroles") else ""
    name = KERNEL_CLUSTER_ROLE if base == "clusterroles" else ""
    namespace = None if base in ("namespaces", "clusterroles") else "some-namespace"
    return await d.gateway.can_i(verb, base, group=group, subresource=sub, name=name, namespace=namespace)


async def may_here(d: Deployment, resource: str, verb: str) -> bool:
    """Whether the gateway's account may ``verb`` ``resource`` in its own namespace."""
    group = "coordination.k8s.io" if resource == "leases" else ""
    return await d.gateway.can_i(verb, resource, group=group, namespace=GATEWAY_NAMESPACE)


async def set_namespace_rules(admin: Cluster, rules: list[dict[str, Any]]) -> None:
    role = await admin.get("roles", GATEWAY_ROLE, namespace=GATEWAY_NAMESPACE)
    role["rules"] = rules
    await admin.replace("roles", GATEWAY_ROLE, role, namespace=GATEWAY_NAMESPACE)


@contextlib.asynccontextmanager
async def namespace_role_without(d: Deployment, resource: str, verb: str) -> AsyncIterator[None]:
    """The manifests' ``enterprise-gateway`` Role minus one verb on one resource, restored afterwards
    (each change awaited until the API server's authorizer follows it)."""
    reduced = rules_without(namespace_rules(), resource, verb)
    assert reduced != namespace_rules(), f"the Role grants no {verb} on {resource}"
    await set_namespace_rules(d.admin, reduced)
    try:
        await in_effect(lambda: may_here(d, resource, verb), False)
        yield
    finally:
        await set_namespace_rules(d.admin, namespace_rules())
        await in_effect(lambda: may_here(d, resource, verb), True)


def assert_refused(outcome: Outcome, resource: str) -> None:
    said = " ".join([str(outcome.error), *outcome.complaints])
    assert "forbidden" in said and resource in said, f"not an RBAC refusal: {outcome}"


# --------------------------------------------------------------------------- tests


def test_every_grant_has_a_scenario():
    assert sorted(PROOFS) == sorted(CASES), "each grant of the gateway's ClusterRole needs a scenario proving it"
    assert {name for name, _ in PROOFS.values()} == set(SCENARIOS)
    assert sorted(NAMESPACE_PROOFS) == sorted(NAMESPACE_CASES), \
        "each grant of the gateway's Role in its namespace needs a scenario proving it"
    assert {name for name, _ in NAMESPACE_PROOFS.values()} == set(NAMESPACE_SCENARIOS)


@in_module_loop
async def test_the_gateway_acts_as_its_service_account_with_the_manifests_role(deployment):
    args, stdin = kubectlclient.whoami_command("--context", context_for("gateway"),
                                               "-o", "jsonpath={.status.userInfo.username}")
    _, out, _ = await deployment.kubectl(*args, stdin=stdin)
    assert out == "system:serviceaccount:enterprise-gateway:enterprise-gateway-sa"
    for resource, verb in CASES:
        assert await may(deployment, resource, verb), (resource, verb)
    for resource, verb in NAMESPACE_CASES:
        assert await may_here(deployment, resource, verb), (resource, verb)
    # Kernel records are read in the gateway's own namespace, and nowhere else.
    assert await deployment.gateway.can_i("list", "secrets", namespace=GATEWAY_NAMESPACE)
    assert not await deployment.gateway.can_i("list", "secrets", namespace=KERNEL_NAMESPACE)
    assert not await deployment.gateway.can_i("list", "secrets")
    assert not await deployment.gateway.can_i("update", "leases", group="coordination.k8s.io", namespace="kube-system")
    assert not await deployment.gateway.can_i("bind", "clusterroles", group=RBAC, name="cluster-admin")
    assert not await deployment.gateway.can_i("create", "clusterrolebindings", group=RBAC)


@in_module_loop
@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_with_the_full_role_every_scenario_goes_right(deployment, companion_spec, name):
    outcome = await SCENARIOS[name](deployment, companion_spec)
    if outcome.kernel_id:
        await remove_leftovers(deployment.admin, outcome.kernel_id)
    for (resource, verb), (scenario, check) in PROOFS.items():
        if scenario == name:
            assert check(outcome), f"{check.__name__} does not hold for {name} (needed by {verb} {resource}): {outcome}"


@in_module_loop
@pytest.mark.parametrize(("resource", "verb"), CASES, ids=[f"{v}-{r}" for r, v in CASES])
async def test_without_one_grant_its_scenario_goes_wrong(deployment, companion_spec, resource, verb):
    name, check = PROOFS[(resource, verb)]
    async with gateway_role_without(deployment.admin, resource, verb, lambda: may(deployment, resource, verb)):
        assert not await may(deployment, resource, verb)
        outcome = await SCENARIOS[name](deployment, companion_spec)
    if outcome.kernel_id:
        await remove_leftovers(deployment.admin, outcome.kernel_id)
    assert not check(outcome), f"{name} still passes {check.__name__} without {verb} on {resource}"
    if (resource, verb) != ("pods/log", "get"):  # the log tail is best effort: its absence is the only sign
        assert_refused(outcome, "attempting to grant RBAC permissions" if resource == "clusterroles" else resource)


@in_module_loop
@pytest.mark.parametrize("name", sorted(NAMESPACE_SCENARIOS))
async def test_with_the_full_namespace_role_every_scenario_goes_right(deployment, name):
    outcome = await NAMESPACE_SCENARIOS[name](deployment, None)
    for (resource, verb), (scenario, check) in NAMESPACE_PROOFS.items():
        if scenario == name:
            assert check(outcome), f"{check.__name__} does not hold for {name} (needed by {verb} {resource}): {outcome}"


@in_module_loop
@pytest.mark.parametrize(("resource", "verb"), NAMESPACE_CASES, ids=[f"{v}-{r}" for r, v in NAMESPACE_CASES])
async def test_without_one_namespace_grant_its_scenario_goes_wrong(deployment, resource, verb):
    name, check = NAMESPACE_PROOFS[(resource, verb)]
    async with namespace_role_without(deployment, resource, verb):
        assert not await may_here(deployment, resource, verb)
        outcome = await NAMESPACE_SCENARIOS[name](deployment, None)
    assert not check(outcome), f"{name} still passes {check.__name__} without {verb} on {resource}"
    assert_refused(outcome, resource)


# ---------------------------------------------------------------------------- the whole gateway, three modes


class AsItsAccount:
    """The gateway's cluster connection: the real adapter holding ``enterprise-gateway-sa``'s token.

    ``local``: the node agent runs pods on this machine, so kernels call back on 127.0.0.1.
    The adapter belongs to the deployment fixture, which closes it.
    """

    description = "the simulated API server, as enterprise-gateway-sa"
    local = True

    def __init__(self, d: Deployment) -> None:
        self.cluster = d.gateway
        self.admin = d.admin

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


@in_module_loop
@pytest.mark.parametrize("mode", ["own", "shared", "user"])
async def test_the_gateway_serves_kernels_in_every_namespace_mode_as_its_account(deployment, mode):
    config = GatewayConfig(ip="127.0.0.1", port=0, namespace=GATEWAY_NAMESPACE, kernel_cluster_role=KERNEL_CLUSTER_ROLE,
                           shared_namespace=(mode == "shared"), kernel_launch_timeout=WAIT, shutdown_wait_time=2.0,
                           auth_token="s3cret")
    connection = AsItsAccount(deployment)
    gateway = Gateway(config, cluster=connection, response_port=0)
    env = {"KERNEL_USERNAME": "carol"}
    if mode == "user":
        env.update(KERNEL_NAMESPACE=KERNEL_NAMESPACE, KERNEL_SERVICE_ACCOUNT_NAME=KERNEL_ACCOUNT)
    with complaints("gateway.provisioner", "gateway.kernels", "gateway.app") as logged:
        await gateway.start()
        client = RunningGateway(gateway, connection, token="s3cret")
        try:
            for probe in ("/readyz", "/healthz"):  # the Deployment's probes, which send no token
                status, _, _ = await client.call("GET", probe, token="")
                assert status == 200, probe
            status, kernel, _ = await client.call("POST", "/api/kernels", {"env": env})
            assert status == 201, kernel
            pod = kernel_resource_name("carol", kernel["id"])
            namespace = {"own": pod, "shared": GATEWAY_NAMESPACE, "user": KERNEL_NAMESPACE}[mode]
            first = await deployment.admin.get("pods", pod, namespace=namespace)
            ws = await client.websocket(kernel["id"])
            assert (await execute(ws, "x = 20\nx + 1")).results == ["21"]

            status, _, _ = await client.call("POST", f"/api/kernels/{kernel['id']}/restart", {})
            assert status == 200
            second = await deployment.admin.get("pods", pod, namespace=namespace)
            assert second["metadata"]["uid"] != first["metadata"]["uid"]
            ws = await client.websocket(kernel["id"])
            assert (await execute(ws, "2 * 21")).results == ["42"]

            status, _, _ = await client.call("DELETE", f"/api/kernels/{kernel['id']}")
            assert status == 204
        finally:
            await gateway.stop()
            for ws in client.clients:
                await client.closed(ws)
    assert await leftovers(deployment.admin, kernel["id"]) == []
    assert not [line for line in logged.lines if "forbidden" in line.lower()]
    for kept in (GATEWAY_NAMESPACE, KERNEL_NAMESPACE):
        await deployment.admin.get("namespaces", kept)  # never deleted by the gateway


@in_module_loop
async def test_kernelgate_serve_runs_as_the_deployment_configures_it(deployment, tmp_path):
    """The Deployment's container, run as a process: its command, args and env, the gateway account's token."""
    container = manifest_object("Deployment", "enterprise-gateway")["spec"]["template"]["spec"]["containers"][0]
    args = list(container["args"])
    args[args.index("--ip") + 1] = "127.0.0.1"  # the pod's address here: the node agent runs pods on loopback
    args[args.index("--port") + 1] = "0"
    kubeconfig = tmp_path / "gateway-kubeconfig"
    token = await deployment.kubectl.token("enterprise-gateway-sa", GATEWAY_NAMESPACE)
    config = fake_kubeconfig.build(deployment.cluster.url, deployment.cluster.ca_pem, "unused",
                                   users={"gateway": token})
    config["current-context"] = context_for("gateway")
    kubeconfig.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "EG_", "KERNEL_"))}
    env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
    env.update(EG_RESPONSE_IP="127.0.0.1", EG_RESPONSE_PORT="0")  # status.podIP here; any free port
    program = Path(sys.executable).parent / container["command"][0]
    with (tmp_path / "gateway.log").open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            str(program), *container["command"][1:], *args, "--kubeconfig", str(kubeconfig),
            env=env, stdout=asyncio.subprocess.PIPE, stderr=log_file)
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
            assert line.startswith(b"kernelgate serving at http://127.0.0.1:"), (line, log_tail(tmp_path))
            url = line.split()[3].decode()
            http = AsyncHTTPClient()
            ready = await http.fetch(url + "/readyz", raise_error=False, request_timeout=WAIT)
            assert ready.code == 200, ready.body
            started = await http.fetch(url + "/api/kernels", method="POST", request_timeout=WAIT + 30,
                                       body=json.dumps({"name": "python_kubernetes",
                                                        "env": {"KERNEL_USERNAME": "erin"}}), raise_error=False)
            assert started.code == 201, (started.body, log_tail(tmp_path))
            kernel_id = json.loads(started.body)["id"]
            pod = kernel_resource_name("erin", kernel_id)
            assert (await deployment.admin.get("pods", pod, namespace=pod))["status"]["phase"] == "Running"
            stopped = await http.fetch(f"{url}/api/kernels/{kernel_id}", method="DELETE", request_timeout=WAIT)
            assert stopped.code == 204
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.wait_for(proc.wait(), WAIT)
            except asyncio.TimeoutError:
                proc.kill()  # a gateway stuck in its shutdown must not outlive the test
                await proc.wait()
                raise
    assert code == 0, log_tail(tmp_path)
    assert await leftovers(deployment.admin, kernel_id) == []
    assert "forbidden" not in (tmp_path / "gateway.log").read_text().lower()


def log_tail(tmp_path: Path) -> str:
    return (tmp_path / "gateway.log").read_text(errors="replace")[-3000:]


# ---------------------------------------------------------------------------- a kernel's own account


EVERY_ACCOUNTS = ("clustertrustbundles.certificates.k8s.io",)
"""What a real server lets every service account read, whatever its bindings (the bootstrap ClusterRole
``system:cluster-trust-bundle-discovery``, bound to ``system:serviceaccounts``)."""


async def rights(d: Deployment, account: str, namespace: str) -> dict[str, str]:
    """``kubectl auth can-i --list`` for ``account`` in ``namespace``: resource -> verbs, without the
    self-reviews every authenticated user may make and what every service account may read."""
    _, out, _ = await d.kubectl("auth", "can-i", "--list", f"--as={account}", "-n", namespace)
    found = {}
    for line in out.splitlines()[1:]:
        fields = line.split()
        if fields and not fields[0].startswith(("[", "self")) and fields[0] not in EVERY_ACCOUNTS:
            found[fields[0]] = " ".join(sorted(line[line.rindex("[") + 1:line.rindex("]")].split()))
    return found


@in_module_loop
async def test_a_kernels_account_reaches_only_its_own_namespace(deployment):
    provisioner = deployment.provisioner()
    request = Deployment.request(username="dave")
    running = await provisioner.launch(request)
    try:
        own = running.placement.namespace
        others = [GATEWAY_NAMESPACE, KERNEL_NAMESPACE, "default", "kube-system"]
        kernel_rights = {"pods": "create delete get list watch", "configmaps": "create list",
                         "persistentvolumeclaims": "list", "services": "list"}
        for account, home in ((f"system:serviceaccount:{own}:default", own),
                              (f"system:serviceaccount:{KERNEL_NAMESPACE}:{KERNEL_ACCOUNT}", KERNEL_NAMESPACE)):
            assert await rights(deployment, account, home) == kernel_rights
            for namespace in {own, *others} - {home}:
                assert await rights(deployment, account, namespace) == {}, (account, namespace)
            _, out, _ = await deployment.kubectl("auth", "can-i", "list", "namespaces", f"--as={account}", check=False)
            assert out.strip() == "no"

        token = await deployment.kubectl.token("default", own)
        path = await asyncio.to_thread(deployment.cluster.write_kubeconfig, None, kernel=token)
        kernel = await asyncio.to_thread(KubernetesCluster.from_kubeconfig, str(path), context_for("kernel"))
        try:
            mine = await kernel.list("pods", namespace=own)
            assert [p["metadata"]["name"] for p in mine["items"]] == [running.placement.pod_name]
            for namespace in others:
                with pytest.raises(Forbidden):
                    await kernel.list("pods", namespace=namespace)
                with pytest.raises(Forbidden):
                    await kernel.create("configmaps", {"metadata": {"name": "intruder"}}, namespace=namespace)
            with pytest.raises(Forbidden):
                await kernel.list("pods")
            with pytest.raises(Forbidden):
                await kernel.list("secrets", namespace=own)
            with pytest.raises(Forbidden):
                await kernel.get("namespaces", own)
        finally:
            await kernel.close()
    finally:
        await provisioner.stop(running, grace_seconds=0)
        await provisioner.release(running.placement)
    assert await leftovers(deployment.admin, request.kernel_id) == []


def test_rules_without_takes_away_one_verb_and_keeps_the_rest():
    rules = [{"apiGroups": [""], "resources": ["a", "b"], "verbs": ["get", "list"]},
             {"apiGroups": [""], "resources": ["c"], "verbs": ["get"]}]
    assert rules_without(rules, "a", "get") == [
        {"apiGroups": [""], "resources": ["b"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["a"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["c"], "verbs": ["get"]},
    ]
    assert rules_without(rules, "c", "get") == rules[:1]
