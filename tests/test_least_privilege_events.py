"""The gateway's Kubernetes Events: what ``kubectl get events`` shows of kernels, and the grant they need.

As ``tests/test_least_privilege.py`` does for the rest of the gateway's permissions: the
manifests are applied to the simulated API server with kubectl (with ``--cluster=kube``, to a
real control plane), and the whole gateway (``gateway.app``) runs as ``enterprise-gateway-sa``
through the real adapter, RBAC enforced.

* a failed launch, an auto-restart and a cull each leave an event that the operator's
  ``kubectl get events`` shows, as controllers write them (``source.component`` kernelgate,
  ``involvedObject``, ``count``, first and last timestamps);
* each grant on ``events`` of the ``enterprise-gateway-controller`` ClusterRole has a scenario
  that needs it (:data:`PROOFS`, checked against the manifest): without it the scenario's
  event is missing, while what the gateway answers its client stays the same (events are
  best effort) and the refusal is logged.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fakes.manifests import gateway_rules
from fakes.node.kernel_images import repository_root
from gateway.app import Gateway
from gateway.config import GatewayConfig
from gateway.kernels.kernel import utcnow
from gateway.objects import kernel_resource_name
from gateway.objects.record import record_name
from tests.deployedharness import (
    FAILING_IMAGE,
    FAILING_OUTPUT,
    GATEWAY_NAMESPACE,
    KERNEL_ACCOUNT,
    KERNEL_CLUSTER_ROLE,
    KERNEL_NAMESPACE,
    WAIT,
    Deployment,
    complaints,
    deployment_fixture,  # noqa: F401 (the module's ``deployment`` fixture, which pytest finds by name)
    gateway_role_without,
    parametrize_places,
)
from tests.httpharness import RunningGateway

pytestmark = [
    pytest.mark.slow,
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]
in_module_loop = pytest.mark.asyncio(loop_scope="module")
"""Async tests share the module's event loop, where the deployment fixture runs."""

USER = "carol"
FAILING_SPEC = "failing_kubernetes"
EVENT_GRANTS = sorted((resource, verb) for rule in gateway_rules() for resource in rule["resources"]
                      for verb in rule["verbs"] if resource == "events")
"""The grants on events of the manifests' gateway ClusterRole, as ``(resource, verb)``."""


pytest_generate_tests = parametrize_places


@pytest.fixture(scope="module")
def kernelspecs(tmp_path_factory) -> Path:
    """``python_kubernetes``, and ``failing_kubernetes``: its image's container exits at once (the operator's
    mistake, not the client's)."""
    specs = tmp_path_factory.mktemp("kernelspecs")
    shutil.copytree(repository_root() / "kernelspecs" / "python_kubernetes", specs / "python_kubernetes")
    shutil.copytree(repository_root() / "kernelspecs" / "python_kubernetes", specs / FAILING_SPEC)
    kernel_json = json.loads((specs / FAILING_SPEC / "kernel.json").read_text())
    kernel_json["metadata"]["process_proxy"]["config"]["image_name"] = FAILING_IMAGE
    (specs / FAILING_SPEC / "kernel.json").write_text(json.dumps(kernel_json))
    return specs


class AsItsAccount:
    """The gateway's cluster connection: the deployment's adapter, holding ``enterprise-gateway-sa``'s token."""

    description = "the simulated API server, as enterprise-gateway-sa"
    local = True

    def __init__(self, d: Deployment) -> None:
        self.cluster = d.gateway
        self.admin = d.admin

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class Running:
    """A started gateway as its account, with its HTTP client; ``stop`` stops it."""

    def __init__(self, d: Deployment, specs: Path, **traits: Any) -> None:
        config = GatewayConfig(ip="127.0.0.1", port=0, namespace=GATEWAY_NAMESPACE,
                               kernel_cluster_role=KERNEL_CLUSTER_ROLE, kernel_launch_timeout=WAIT,
                               shutdown_wait_time=2.0, auth_token="s3cret", kernel_spec_paths=[str(specs)], **traits)
        self.connection = AsItsAccount(d)
        self.gateway = Gateway(config, cluster=self.connection, response_port=0)
        self.client = RunningGateway(self.gateway, self.connection, token="s3cret")  # type: ignore[arg-type]

    async def __aenter__(self) -> Running:
        await self.gateway.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.gateway.stop()
        for ws in self.client.clients:
            await self.client.closed(ws)

    async def events_written(self) -> None:
        assert self.gateway.events is not None
        await self.gateway.events.flush()


async def events(d: Deployment, namespace: str, **involved: str) -> list[dict[str, Any]]:
    """The events of ``namespace`` about the object ``involved`` describes (``kind``, ``name``), as kubectl lists them
    (the node's own among them: Scheduled, Pulled, Started...)."""
    _, out, _ = await d.kubectl("get", "events", "-n", namespace, "-o", "json")
    found = json.loads(out)["items"]
    return [e for e in found if all(e["involvedObject"].get(k) == v for k, v in involved.items())]


async def table(d: Deployment, namespace: str) -> str:
    """``kubectl get events -n namespace``: what an operator reads."""
    _, out, _ = await d.kubectl("get", "events", "-n", namespace)
    return out


# --------------------------------------------------------------------------- scenarios


@dataclass
class Outcome:
    """What the client was answered, the events about the kernel, and what the gateway warned of meanwhile."""

    status: int
    body: dict[str, Any]
    events: list[dict[str, Any]]
    complaints: list[str]



async def failed_launch(d: Deployment, specs: Path) -> Outcome:
    """A start of ``failing_kubernetes`` in a namespace of the kernel's own: the answer, the events, the complaints."""
    kernel_id = str(uuid.uuid4())
    async with Running(d, specs) as running:
        with complaints("gateway.cluster.events") as logged:
            status, body, _ = await running.client.call(
                "POST", "/api/kernels", {"name": FAILING_SPEC, "env": {"KERNEL_USERNAME": USER, "KERNEL_ID": kernel_id}})
            await running.events_written()
    written = await events(d, GATEWAY_NAMESPACE, kind="Secret", name=record_name(kernel_id))
    return Outcome(status, body, written, logged.lines)


def tells_it(outcome: Outcome) -> bool:
    return len(outcome.events) == 1


PROOFS: dict[tuple[str, str], tuple[str, Callable[[Outcome], bool]]] = {
    ("events", "create"): ("failed launch", tells_it),
}
"""For each grant on events: the scenario that needs it, and what is missing without it."""
SCENARIOS = {"failed launch": failed_launch}


# --------------------------------------------------------------------------- tests


def test_every_events_grant_has_a_scenario():
    assert EVENT_GRANTS == [("events", "create")], "events are written once, never patched or read back"
    assert sorted(PROOFS) == EVENT_GRANTS
    assert {name for name, _ in PROOFS.values()} == set(SCENARIOS)


@in_module_loop
async def test_a_failed_launch_is_an_event_kubectl_shows(deployment, kernelspecs):
    outcome = await failed_launch(deployment, kernelspecs)
    assert outcome.status == 500 and "exited with code 1" in outcome.body["message"], outcome.body
    [event] = outcome.events
    kernel_id = event["involvedObject"]["name"].removeprefix("kernel-")
    assert event["type"] == "Warning" and event["reason"] == "PodFailed"
    assert event["message"].startswith(f"Kernel {kernel_id} ({FAILING_SPEC}) could not be launched: ")
    assert "exited with code 1" in event["message"]
    assert FAILING_OUTPUT in outcome.body["message"] and FAILING_OUTPUT not in event["message"]  # the kernel's output
    assert event["source"]["component"] == "kernelgate" and event["count"] == 1
    assert event["firstTimestamp"] == event["lastTimestamp"]
    # The kernel's own namespace went with the failed launch: the event is the gateway's namespace's, about the
    # kernel's record, so it outlives both.
    assert event["involvedObject"]["kind"] == "Secret" and event["metadata"]["namespace"] == GATEWAY_NAMESPACE
    shown = await table(deployment, GATEWAY_NAMESPACE)
    assert any("Warning" in line and "PodFailed" in line and f"secret/kernel-{kernel_id}" in line
               for line in shown.splitlines()), shown


@in_module_loop
async def test_an_auto_restart_and_a_cull_are_events_on_the_kernels_pod(deployment, kernelspecs):
    env = {"KERNEL_USERNAME": USER, "KERNEL_NAMESPACE": KERNEL_NAMESPACE, "KERNEL_SERVICE_ACCOUNT_NAME": KERNEL_ACCOUNT}
    async with Running(deployment, kernelspecs, cull_idle_timeout=600, cull_interval=3600) as running:
        status, model, _ = await running.client.call("POST", "/api/kernels", {"name": "python_kubernetes", "env": env})
        assert status == 201, model
        service = running.gateway.service
        assert service is not None
        kernel = service.get(model["id"])
        pod = kernel_resource_name(USER, kernel.id)
        dead = await deployment.admin.get("pods", pod, namespace=KERNEL_NAMESPACE)
        await deployment.admin.delete("pods", pod, namespace=KERNEL_NAMESPACE, grace_period_seconds=0)
        await kernel.wait_until(lambda k: k.running is not None and k.running.pod_uid != dead["metadata"]["uid"]
                                and k.state == "idle", WAIT)
        async with kernel.lock:  # held by the auto-restart until it recorded the new pod
            pass

        kernel.last_activity = utcnow() - timedelta(hours=1)  # idle for an hour, as far as the culler can tell
        assert await service.cull_idle_kernels() == [kernel.id]
        await running.events_written()

    about_pod = await events(deployment, KERNEL_NAMESPACE, kind="Pod", name=pod)
    # A real kube-scheduler's events (events.k8s.io) have an empty source: it names reportingComponent.
    reasons = {event["reason"]: event for event in about_pod if event["source"].get("component") == "kernelgate"}
    assert set(reasons) == {"KernelRestarting", "KernelCulled"}, about_pod
    restarting, culled = reasons["KernelRestarting"], reasons["KernelCulled"]
    assert restarting["type"] == "Warning" and restarting["involvedObject"]["uid"] == dead["metadata"]["uid"]
    assert restarting["message"].endswith("died; restarting the kernel (1 of 5)")
    assert culled["type"] == "Normal" and "was idle for 3600 s" in culled["message"]
    shown = await table(deployment, KERNEL_NAMESPACE)
    for reason in ("KernelRestarting", "KernelCulled"):
        assert any(reason in line and f"pod/{pod}" in line for line in shown.splitlines()), shown


@in_module_loop
@pytest.mark.parametrize(("resource", "verb"), EVENT_GRANTS, ids=[f"{v}-{r}" for r, v in EVENT_GRANTS])
async def test_without_the_grant_its_event_is_missing_and_nothing_else_changes(deployment, kernelspecs, resource,
                                                                               verb):
    name, check = PROOFS[(resource, verb)]
    async with gateway_role_without(deployment.admin, resource, verb,
                                    lambda: deployment.gateway.can_i(verb, resource, namespace=KERNEL_NAMESPACE)):
        outcome = await SCENARIOS[name](deployment, kernelspecs)
    assert not check(outcome), f"{name} still leaves its event without {verb} on {resource}"
    assert outcome.status == 500 and "exited with code 1" in outcome.body["message"], outcome  # as with the grant
    assert any("not written" in line and "forbidden" in line.lower() for line in outcome.complaints), outcome
