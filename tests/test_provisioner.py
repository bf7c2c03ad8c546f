"""The provisioner launching real kernels on the simulated cluster.

The gateway acts as its service account, with the ClusterRole of the
manifests (:data:`GATEWAY_RULES`), over the in-memory cluster; a node agent runs the
kernel image as this repository's ``bootstrap-kernel.sh`` and launcher, and a
real response listener receives the launchers' connection info.  Tests talk
to the kernels with jupyter_client.  Waits are watches with timeouts; no
test sleeps.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.asynchronous import AsyncKernelClient

from fakes.auth.identity import node_user, service_account_user
from fakes.gateway_rbac import cluster_role, install_gateway_rbac
from fakes.manifests import gateway_rules, kernel_rules
from fakes.memory import MemoryCluster
from fakes.node.images import ImageSpec
from fakes.node.kernel_images import kernel_image_map, repository_root
from fakes.node.kubelet import NodeAgent
from fakes.state.store import Store
from gateway.cluster.informer import Informer
from gateway.cluster.interface import Cluster, NotFound, ServiceUnavailable
from gateway.objects import kernel_selector
from gateway.provisioner import (
    ClusterUnavailable,
    ImagePullFailed,
    InvalidLaunch,
    LaunchForbidden,
    LaunchRequest,
    LaunchTimeout,
    PodFailed,
    PodProvisioner,
    ProvisionerSettings,
    ResponseListener,
    RunningKernel,
    Unschedulable,
    kernel_spec_info,
)
from tests.node import FAST
from tests.podwait import phase_is, wait_for_pod, wait_for_pod_deleted

pytestmark = pytest.mark.slow

GATEWAY_NAMESPACE = "enterprise-gateway"
GATEWAY_ACCOUNT = "enterprise-gateway-sa"
KERNEL_CLUSTER_ROLE = "kernel-controller"
RBAC = "rbac.authorization.k8s.io"
KERNEL_NAMESPACE_LABELS = {"app": "enterprise-gateway", "component": "kernel"}
"""The labels of a namespace an operator prepared for kernels, as the seed's kernel-ns carries them."""

GATEWAY_RULES: list[dict[str, Any]] = gateway_rules()
"""What the gateway's service account may do: the manifests' enterprise-gateway-controller ClusterRole."""

KERNEL_RULES: list[dict[str, Any]] = kernel_rules()
"""The manifests' kernel-controller ClusterRole, bound in each namespace the gateway creates."""

SILENT_IMAGE = "test/silent-kernel:1"  # starts, never calls back
FAILING_IMAGE = "test/failing-kernel:1"  # prints a line and exits 1
MISSING_IMAGE = "registry.example.com/nobody/kernel-py:404"
WAIT = 60.0  # bound for a kernel to start on a loaded machine
SPEC = kernel_spec_info("python_kubernetes", repository_root() / "kernelspecs" / "python_kubernetes")



async def install_gateway(admin: Cluster) -> None:
    """What the manifests set up: the gateway's namespace, service account and RBAC, the kernel ClusterRole."""
    await install_gateway_rbac(admin, GATEWAY_NAMESPACE)


def script_image(path: Path, body: str) -> ImageSpec:
    """An image whose ``/etc/bootstrap-kernel.sh`` is a shell script with ``body``."""
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return ImageSpec(cmd=["/etc/bootstrap-kernel.sh"], env={"PATH": "/usr/bin:/bin"},
                     files={"/etc/bootstrap-kernel.sh": str(path)})


@dataclass
class Env:
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


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
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


# --------------------------------------------------------------------------- helpers


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line holds ``text`` (a kernel's connection file names its kernel id)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if text.encode() in cmdline and "State:\tZ" not in status:
            found.append(int(entry.name))
    return found


async def run(running: RunningKernel, code: str) -> list[str]:
    """Execute ``code`` in the kernel; its ``text/plain`` results."""
    client = AsyncKernelClient()
    client.load_connection_info(running.connection.to_jupyter())
    client.hb_channel.time_to_dead = 10.0  # a loaded test machine may miss the 1s default
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=WAIT)
        results: list[str] = []

        def on_output(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "execute_result":
                results.append(msg["content"]["data"]["text/plain"])

        reply = await client.execute_interactive(code, timeout=WAIT, output_hook=on_output)
        assert reply["content"]["status"] == "ok", reply["content"]
        return results
    finally:
        client.stop_channels()


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


def container_env(pod: Mapping[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["spec"]["containers"][0]["env"]}


# --------------------------------------------------------------------------- the three namespace modes


async def test_default_mode_runs_the_kernel_in_a_namespace_of_its_own_kept_across_restarts(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERNELGATE_GATEWAY_ONLY", "never-in-a-pod")
    request = env.request(KERNEL_EXTRA="client value", KERNEL_POD_IP="10.9.9.9")

    running = await env.provisioner.launch(request)

    placement = running.placement
    assert placement.owns_namespace and placement.namespace == placement.pod_name == f"alice-{request.kernel_id}"
    namespace = await env.admin.get("namespaces", placement.namespace)
    assert namespace["metadata"]["labels"].items() >= {
        "app": "enterprise-gateway", "component": "kernel", "kernel_id": request.kernel_id}.items()
    binding = await env.admin.get("rolebindings", KERNEL_CLUSTER_ROLE, namespace=placement.namespace)
    assert binding["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole", "name": KERNEL_CLUSTER_ROLE}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "default", "namespace": placement.namespace}]
    pod = await env.admin.get("pods", placement.pod_name, namespace=placement.namespace)
    assert pod["metadata"]["labels"]["kernel_id"] == request.kernel_id
    assert pod["metadata"]["labels"]["app"] == "enterprise-gateway"
    assert pod["metadata"]["labels"]["component"] == "kernel"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["metadata"]["uid"] == running.pod_uid and pod["status"]["podIP"] == running.pod_ip
    variables = container_env(pod)
    assert variables["KERNEL_ID"] == request.kernel_id and variables["KERNEL_EXTRA"] == "client value"
    assert variables["KERNEL_RESPONSE_KEY"] == env.listener.public_key
    assert variables["PUBLIC_KEY"] == env.listener.legacy_public_key
    assert variables["KERNEL_POD_IP"] == {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}
    assert "KERNELGATE_GATEWAY_ONLY" not in variables and "PATH" not in variables
    assert running.connection.key not in json.dumps(pod)
    assert running.connection.ip == running.pod_ip

    assert await run(running, "x = 41\n1+1") == ["2"]
    assert processes_mentioning(request.kernel_id)  # what the fixture checks is gone at the end

    # A restart: stop, then launch with the same placement; namespace and role binding stay as they are.
    await env.provisioner.stop(running, grace_seconds=1)
    assert env.provisioner.pod_phase(request.kernel_id) is None
    restarted = await env.provisioner.launch(request, placement)

    assert restarted.placement == placement and restarted.pod_uid != running.pod_uid
    assert (await env.admin.get("namespaces", placement.namespace))["metadata"]["uid"] == namespace["metadata"]["uid"]
    kept = await env.admin.get("rolebindings", KERNEL_CLUSTER_ROLE, namespace=placement.namespace)
    assert kept["metadata"]["uid"] == binding["metadata"]["uid"]
    assert await run(restarted, "'x' in globals(), 1+1") == ["(False, 2)"]

    await env.provisioner.stop(restarted, grace_seconds=1)
    await env.provisioner.release(placement)
    await assert_nothing_left(env.admin, request.kernel_id)
    assert not await exists(env.admin, "namespaces", placement.namespace)


async def test_kernel_namespace_is_used_as_is_and_survives_release(env: Env) -> None:
    await env.admin.create("namespaces", {"metadata": {"name": "team-a", "labels": KERNEL_NAMESPACE_LABELS}})
    await env.admin.create("serviceaccounts", {"metadata": {"name": "team-sa"}}, namespace="team-a")
    request = env.request(KERNEL_NAMESPACE="team-a", KERNEL_SERVICE_ACCOUNT_NAME="team-sa")

    running = await env.provisioner.launch(request)

    assert (running.placement.namespace, running.placement.service_account) == ("team-a", "team-sa")
    assert not running.placement.owns_namespace
    pod = await env.admin.get("pods", running.placement.pod_name, namespace="team-a")
    assert pod["spec"]["serviceAccountName"] == "team-sa"
    assert (await env.admin.list("rolebindings", namespace="team-a"))["items"] == []
    assert await labelled(env.admin, "namespaces", request.kernel_id) == []
    assert await run(running, "1+1") == ["2"]

    await env.provisioner.stop(running, grace_seconds=1)
    await env.provisioner.release(running.placement)
    await assert_nothing_left(env.admin, request.kernel_id)
    assert await exists(env.admin, "namespaces", "team-a")
    assert await exists(env.admin, "serviceaccounts", "team-sa", "team-a")


async def test_shared_namespace_puts_kernels_in_the_gateway_namespace(env: Env) -> None:
    provisioner = env.provisioner_with(shared_namespace=True)
    request = env.request(username="bob")

    running = await provisioner.launch(request)

    assert running.placement.namespace == GATEWAY_NAMESPACE and not running.placement.owns_namespace
    assert await labelled(env.admin, "rolebindings", request.kernel_id) == []
    assert await run(running, "1+1") == ["2"]
    await provisioner.stop(running, grace_seconds=1)
    await provisioner.release(running.placement)
    await assert_nothing_left(env.admin, request.kernel_id)
    assert await exists(env.admin, "namespaces", GATEWAY_NAMESPACE)


# --------------------------------------------------------------------------- launches that fail


async def test_a_missing_image_fails_fast_and_leaves_nothing(env: Env) -> None:
    request = env.request(KERNEL_IMAGE=MISSING_IMAGE, timeout=600)

    with pytest.raises(ImagePullFailed) as failed:
        await asyncio.wait_for(env.provisioner.launch(request), WAIT)

    assert MISSING_IMAGE in failed.value.message and "ErrImagePull" in failed.value.message
    await assert_nothing_left(env.admin, request.kernel_id)


async def test_a_kernel_command_exiting_1_is_a_pod_failure_with_its_log(env: Env) -> None:
    request = env.request(KERNEL_IMAGE=FAILING_IMAGE, timeout=600)

    with pytest.raises(PodFailed) as failed:
        await asyncio.wait_for(env.provisioner.launch(request), WAIT)

    assert failed.value.exit_code == 1 and failed.value.status == 500
    assert "exited with code 1" in failed.value.message and "no kernel today" in failed.value.message
    await assert_nothing_left(env.admin, request.kernel_id)


async def test_an_unschedulable_pod_fails_fast(env: Env, tmp_path: Path) -> None:
    spec_dir = tmp_path / "gpu_kernel"
    (spec_dir / "scripts").mkdir(parents=True)
    template = (SPEC.template_path).read_text().replace("  restartPolicy: Never\n",
                                                      "  restartPolicy: Never\n  nodeSelector:\n    gpu: a100\n")
    (spec_dir / "scripts" / "kernel-pod.yaml").write_text(template)
    request = env.request(spec=replace(SPEC, name="gpu_kernel", resource_dir=spec_dir), timeout=600)

    with pytest.raises(Unschedulable) as failed:
        await asyncio.wait_for(env.provisioner.launch(request), WAIT)

    assert "didn't match Pod's node affinity/selector" in failed.value.message
    await assert_nothing_left(env.admin, request.kernel_id)


async def test_a_launcher_that_never_calls_back_times_out_and_leaves_nothing(env: Env) -> None:
    request = env.request(KERNEL_IMAGE=SILENT_IMAGE, timeout=3)

    with pytest.raises(LaunchTimeout) as timed_out:
        await env.provisioner.launch(request)

    pod_name = f"alice-{request.kernel_id}"
    assert timed_out.value.status == 504
    assert f"pod {pod_name} in namespace {pod_name}" in timed_out.value.message
    assert "sent no connection info within 3s" in timed_out.value.message
    await assert_nothing_left(env.admin, request.kernel_id)
    assert not env.listener.is_expected(request.kernel_id)


async def test_a_cancelled_launch_removes_what_it_created(env: Env) -> None:
    request = env.request(KERNEL_IMAGE=SILENT_IMAGE, timeout=600)
    pod_name = f"alice-{request.kernel_id}"
    launching = asyncio.ensure_future(env.provisioner.launch(request))
    await wait_for_pod(env.admin, pod_name, pod_name, phase_is("Running"), timeout=WAIT)

    launching.cancel()
    with pytest.raises(asyncio.CancelledError):
        await launching

    await assert_nothing_left(env.admin, request.kernel_id)


async def test_a_pod_deleted_before_its_launcher_calls_back_fails_the_launch_at_once(env: Env) -> None:
    request = env.request(KERNEL_IMAGE=SILENT_IMAGE, timeout=600)
    pod_name = f"alice-{request.kernel_id}"
    launching = asyncio.ensure_future(env.provisioner.launch(request))
    await wait_for_pod(env.admin, pod_name, pod_name, phase_is("Running"), timeout=WAIT)

    await env.admin.delete("pods", pod_name, namespace=pod_name, grace_period_seconds=0)

    with pytest.raises(PodFailed) as failed:
        await asyncio.wait_for(launching, WAIT)  # well within the launch's own 600 s
    assert failed.value.status == 500 and f"pod {pod_name} in namespace {pod_name}" in failed.value.message
    await assert_nothing_left(env.admin, request.kernel_id)
    assert not env.listener.is_expected(request.kernel_id)


async def test_a_launch_the_informer_stops_under_is_unavailable_and_leaves_nothing(env: Env) -> None:
    pods = Informer(env.gateway, "pods", label_selector=kernel_selector())
    await pods.start()
    provisioner = PodProvisioner(env.gateway, pods, env.listener, env.settings)
    request = env.request(KERNEL_IMAGE=SILENT_IMAGE, timeout=600)
    pod_name = f"alice-{request.kernel_id}"
    launching = asyncio.ensure_future(provisioner.launch(request))
    await wait_for_pod(env.admin, pod_name, pod_name, phase_is("Running"), timeout=WAIT)

    await pods.stop()

    with pytest.raises(ClusterUnavailable) as unavailable:
        await asyncio.wait_for(launching, WAIT)
    assert unavailable.value.status == 503
    assert unavailable.value.message == "the gateway stopped watching kernel pods"
    await provisioner.close()
    await assert_nothing_left(env.admin, request.kernel_id)


async def test_a_launch_the_response_listener_stops_under_is_unavailable_and_leaves_nothing(env: Env) -> None:
    async with ResponseListener(host="127.0.0.1", port=0) as listener:
        settings = replace(env.settings, response_address=f"127.0.0.1:{listener.port}")
        provisioner = PodProvisioner(env.gateway, env.pods, listener, settings)
        request = env.request(KERNEL_IMAGE=SILENT_IMAGE, timeout=600)
        pod_name = f"alice-{request.kernel_id}"
        launching = asyncio.ensure_future(provisioner.launch(request))
        await wait_for_pod(env.admin, pod_name, pod_name, phase_is("Running"), timeout=WAIT)

    with pytest.raises(ClusterUnavailable) as unavailable:
        await asyncio.wait_for(launching, WAIT)
    assert unavailable.value.status == 503
    assert "response listener stopped before the kernel called back" in unavailable.value.message
    await provisioner.close()
    await assert_nothing_left(env.admin, request.kernel_id)


async def test_without_legacy_payloads_the_pod_gets_no_legacy_key(env: Env) -> None:
    async with ResponseListener(host="127.0.0.1", port=0, accept_legacy_payloads=False) as listener:
        settings = replace(env.settings, response_address=f"127.0.0.1:{listener.port}", port_range="40000..40999")
        provisioner = PodProvisioner(env.gateway, env.pods, listener, settings)
        request = env.request(KERNEL_IMAGE=SILENT_IMAGE, timeout=600)
        pod_name = f"alice-{request.kernel_id}"
        launching = asyncio.ensure_future(provisioner.launch(request))
        try:
            pod = await wait_for_pod(env.admin, pod_name, pod_name, phase_is("Running"), timeout=WAIT)
        finally:
            launching.cancel()
            await asyncio.gather(launching, return_exceptions=True)

    variables = container_env(pod)
    assert variables["KERNEL_RESPONSE_KEY"] == listener.public_key and "PUBLIC_KEY" not in variables
    assert variables["PORT_RANGE"] == "40000..40999"
    assert variables["EG_RESPONSE_ADDRESS"] == variables["RESPONSE_ADDRESS"] == settings.response_address
    await assert_nothing_left(env.admin, request.kernel_id)


async def test_forbidden_role_binding_removes_the_new_namespace(env: Env) -> None:
    without_bindings = [r for r in GATEWAY_RULES if "rolebindings" not in r["resources"]]
    without_bindings.append({"apiGroups": [RBAC], "resources": ["rolebindings"], "verbs": ["get", "delete"]})
    await env.admin.replace("clusterroles", "enterprise-gateway-controller",
                            cluster_role("enterprise-gateway-controller", without_bindings))
    request = env.request()

    with pytest.raises(LaunchForbidden) as refused:
        await env.provisioner.launch(request)

    assert refused.value.status == 403 and "rolebindings" in refused.value.message
    await assert_nothing_left(env.admin, request.kernel_id)
    assert not await exists(env.admin, "namespaces", f"alice-{request.kernel_id}")


@pytest.mark.parametrize("namespace", ["no-such-team", "Team_A", "x" * 64])
async def test_a_bad_kernel_namespace_is_refused_before_anything_is_created(env: Env, namespace: str) -> None:
    request = env.request(KERNEL_NAMESPACE=namespace)

    with pytest.raises(InvalidLaunch) as refused:
        await env.provisioner.launch(request)

    assert refused.value.status == 400 and "namespace" in refused.value.message
    await assert_nothing_left(env.admin, request.kernel_id)
    assert not env.listener.is_expected(request.kernel_id)


async def test_a_prohibited_uid_is_forbidden(env: Env) -> None:
    request = env.request(KERNEL_UID="0")

    with pytest.raises(LaunchForbidden):
        await env.provisioner.launch(request)

    await assert_nothing_left(env.admin, request.kernel_id)


class LateServiceAccounts:
    """The gateway's cluster where a new namespace's service account is not there at once.

    A real cluster's service-account controller creates ``default`` shortly after the namespace (the
    simulated one at once); here the account is ``EG_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME`` =
    ``kernel-sa``, which appears once the gateway starts watching for it (never, with ``appears=False``).
    """

    ACCOUNT = "kernel-sa"

    def __init__(self, inner: Cluster, admin: Cluster, *, appears: bool) -> None:
        self._inner, self._admin, self._appears = inner, admin, appears
        self.watched: list[str] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def watch(self, resource: str, **options: Any) -> Any:
        if resource == "serviceaccounts":
            self.watched.append(options["namespace"])
            if self._appears:
                account = {"metadata": {"name": self.ACCOUNT}}
                create = self._admin.create("serviceaccounts", account, namespace=options["namespace"])
                asyncio.get_running_loop().call_soon(lambda: self._tasks.add(asyncio.ensure_future(create)))
        return self._inner.watch(resource, **options)

    async def settle(self) -> None:
        await asyncio.gather(*self._tasks)


async def test_a_new_namespace_service_account_is_awaited_before_the_pod_is_created(env: Env) -> None:
    late = LateServiceAccounts(env.gateway, env.admin, appears=True)
    settings = replace(env.settings, default_service_account=late.ACCOUNT)
    provisioner = PodProvisioner(late, env.pods, env.listener, settings)
    request = env.request(KERNEL_IMAGE=FAILING_IMAGE)

    # The pod was admitted (the failing image ran) rather than refused for its missing service account.
    with pytest.raises(PodFailed):
        await provisioner.launch(request)

    await late.settle()
    assert late.watched == [f"alice-{request.kernel_id}"]
    await assert_nothing_left(env.admin, request.kernel_id)


async def test_a_service_account_that_never_appears_ends_the_launch_in_time(env: Env) -> None:
    late = LateServiceAccounts(env.gateway, env.admin, appears=False)
    settings = replace(env.settings, default_service_account=late.ACCOUNT)
    provisioner = PodProvisioner(late, env.pods, env.listener, settings)
    request = env.request(timeout=1)

    with pytest.raises(LaunchTimeout) as timed_out:
        await provisioner.launch(request)

    assert f"service account kernel-sa did not appear in the new namespace alice-{request.kernel_id}" in (
        timed_out.value.message)
    await assert_nothing_left(env.admin, request.kernel_id)


class LostAnswers:
    """The gateway's cluster where creating ``resource`` works but the answer is lost (a 503 after the write)."""

    def __init__(self, inner: Cluster, resource: str) -> None:
        self._inner, self._resource = inner, resource

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def create(self, resource: str, body: Mapping[str, Any], *, namespace: str | None = None) -> Any:
        created = await self._inner.create(resource, body, namespace=namespace)
        if resource == self._resource:
            raise ServiceUnavailable("the server is currently unable to handle the request")
        return created


@pytest.mark.parametrize("resource", ["namespaces", "pods"])
async def test_an_object_created_without_an_answer_is_still_removed(env: Env, resource: str) -> None:
    provisioner = PodProvisioner(LostAnswers(env.gateway, resource), env.pods, env.listener, env.settings)
    request = env.request(KERNEL_IMAGE=SILENT_IMAGE)

    with pytest.raises(ClusterUnavailable) as unavailable:
        await provisioner.launch(request)

    assert unavailable.value.status == 503
    await assert_nothing_left(env.admin, request.kernel_id)


# --------------------------------------------------------------------------- deaths


async def test_deaths_reports_pods_that_die_on_their_own_but_not_stopped_ones(env: Env) -> None:
    requests = [env.request(username=name) for name in ("deleted", "killed", "stopped")]
    deleted, killed, stopped = await asyncio.gather(*(env.provisioner.launch(r) for r in requests))
    reported: asyncio.Queue[str] = asyncio.Queue()

    async def follow() -> None:
        async for kernel_id in env.provisioner.deaths():
            reported.put_nowait(kernel_id)

    following = asyncio.ensure_future(follow())
    try:
        await env.provisioner.stop(stopped, grace_seconds=1)
        await env.admin.delete("pods", deleted.placement.pod_name, namespace=deleted.placement.namespace)
        # Events arrive in order: had the stopped pod been reported, it would come first.
        assert await asyncio.wait_for(reported.get(), WAIT) == requests[0].kernel_id

        assert env.agent.oom_kill(killed.placement.namespace, killed.placement.pod_name)
        assert await asyncio.wait_for(reported.get(), WAIT) == requests[1].kernel_id
        assert env.provisioner.pod_phase(requests[1].kernel_id) == "Failed"

        # The kernel service relaunches a dead kernel in place: the failed pod makes way for a new one.
        relaunched = await env.provisioner.launch(requests[1], killed.placement)
        assert relaunched.pod_uid != killed.pod_uid
        assert await run(relaunched, "1+1") == ["2"]
        await env.provisioner.stop(relaunched, grace_seconds=1)
        assert reported.empty()
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
    for running in (deleted, killed, stopped):
        await env.provisioner.release(running.placement)
    await wait_for_pod_deleted(env.admin, deleted.placement.namespace, deleted.placement.pod_name)
    for request in requests:
        await assert_nothing_left(env.admin, request.kernel_id)

