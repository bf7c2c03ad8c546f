"""A client cannot borrow the rights of the gateway or of another user's kernel through KERNEL_NAMESPACE.

Over the gateway's HTTP API on the embedded simulated cluster (the manifests'
RBAC, the gateway acting as ``enterprise-gateway-sa`` in ``enterprise-gateway``):
each refusal is a 403 with a JSON reason naming the variable and the rule,
and leaves the cluster as it was; the seed's prepared ``kernel-ns`` with its
``kernel-sa`` still runs kernels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fakes.node.kernel_images import repository_root
from gateway.config import ConfigError, GatewayConfig
from gateway.provisioner.policy import parse_selector
from tests.httpharness import USER, RunningGateway, running_gateway

GATEWAY_NAMESPACE = "enterprise-gateway"
GATEWAY_ACCOUNT = "enterprise-gateway-sa"
SEED_KERNEL_NAMESPACE = repository_root() / "manifests" / "components" / "kernel-namespace" / "kernel-namespace.yaml"
PLURALS = {"Namespace": "namespaces", "ServiceAccount": "serviceaccounts", "RoleBinding": "rolebindings"}


async def refused(gw: RunningGateway, env: dict[str, str], *, username: str = USER) -> str:
    """Start a kernel with ``env``; assert a 403 JSON answer that left the cluster unchanged; return its reason."""
    before = await gw.objects()
    status, body, _ = await gw.call("POST", "/api/kernels", {"env": {"KERNEL_USERNAME": username, **env}})
    assert status == 403, body
    assert isinstance(body, dict) and body["reason"] and body["message"], body
    assert await gw.objects() == before
    return str(body["message"])


async def apply_seed_kernel_namespace(gw: RunningGateway) -> None:
    """Apply manifests/components/kernel-namespace as an operator does (kernel-ns, kernel-sa, role binding)."""
    for doc in yaml.safe_load_all(SEED_KERNEL_NAMESPACE.read_text()):
        namespace = doc["metadata"].get("namespace")
        await gw.cluster.admin.create(PLURALS[doc["kind"]], doc, namespace=namespace)


@pytest.mark.slow
async def test_the_gateway_namespace_and_account_are_refused(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, namespace=GATEWAY_NAMESPACE) as gw:
        message = await refused(gw, {"KERNEL_NAMESPACE": GATEWAY_NAMESPACE,
                                     "KERNEL_SERVICE_ACCOUNT_NAME": GATEWAY_ACCOUNT})
        assert f"KERNEL_NAMESPACE={GATEWAY_NAMESPACE}" in message and "gateway's own namespace" in message
        # Not with the namespace's default account either: shared mode is the operator's switch.
        message = await refused(gw, {"KERNEL_NAMESPACE": GATEWAY_NAMESPACE})
        assert "EG_SHARED_NAMESPACE" in message


@pytest.mark.slow
@pytest.mark.parametrize("namespace", ["kube-system", "default"])
async def test_a_namespace_not_prepared_for_kernels_is_refused(tmp_path: Path, namespace: str) -> None:
    async with running_gateway(tmp_path, namespace=GATEWAY_NAMESPACE) as gw:
        message = await refused(gw, {"KERNEL_NAMESPACE": namespace, "KERNEL_SERVICE_ACCOUNT_NAME": "default"})
        assert f"KERNEL_NAMESPACE={namespace}" in message
        assert "EG_KERNEL_NAMESPACE_SELECTOR" in message and "app=enterprise-gateway,component=kernel" in message


@pytest.mark.slow
async def test_a_kernel_cannot_join_another_users_kernel_namespace(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, namespace=GATEWAY_NAMESPACE) as gw:
        alice = await gw.start_kernel()
        pods = await gw.cluster.admin.list("pods", label_selector=f"kernel_id={alice['id']}")
        alices_namespace = pods["items"][0]["metadata"]["namespace"]
        assert alices_namespace != GATEWAY_NAMESPACE  # a namespace of the kernel's own, labelled with its id

        message = await refused(gw, {"KERNEL_NAMESPACE": alices_namespace}, username="bob")
        assert f"KERNEL_NAMESPACE={alices_namespace}" in message and "kernel_id" in message
        status, kernels, _ = await gw.call("GET", "/api/kernels")
        assert status == 200 and [k["id"] for k in kernels] == [alice["id"]]


@pytest.mark.slow
@pytest.mark.parametrize("variable", ["KERNEL_SERVICE_ACCOUNT_NAME", "EG_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME"])
async def test_shared_mode_never_runs_a_kernel_as_the_gateway_account(tmp_path: Path, variable: str) -> None:
    client_env: dict[str, str] = {}
    traits: dict[str, Any] = {"namespace": GATEWAY_NAMESPACE, "shared_namespace": True}
    if variable == "KERNEL_SERVICE_ACCOUNT_NAME":
        client_env[variable] = GATEWAY_ACCOUNT
    else:
        traits["default_kernel_service_account_name"] = GATEWAY_ACCOUNT
    async with running_gateway(tmp_path, **traits) as gw:
        message = await refused(gw, client_env)
        assert f"{variable}={GATEWAY_ACCOUNT}" in message and "gateway's own service account" in message


@pytest.mark.slow
async def test_the_seed_kernel_namespace_still_runs_kernels_as_its_account(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, namespace=GATEWAY_NAMESPACE) as gw:
        await apply_seed_kernel_namespace(gw)
        kernel = await gw.start_kernel(KERNEL_NAMESPACE="kernel-ns", KERNEL_SERVICE_ACCOUNT_NAME="kernel-sa")

        pods = await gw.cluster.admin.list("pods", label_selector=f"kernel_id={kernel['id']}")
        [pod] = pods["items"]
        assert pod["metadata"]["namespace"] == "kernel-ns" and pod["spec"]["serviceAccountName"] == "kernel-sa"
        status, _, _ = await gw.call("DELETE", f"/api/kernels/{kernel['id']}")
        assert status == 204
        assert await gw.kernel_objects() == set()
        assert (await gw.cluster.admin.get("namespaces", "kernel-ns"))["metadata"]["labels"]["component"] == "kernel"


@pytest.mark.slow
async def test_an_operator_selector_decides_which_namespaces_are_prepared(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, namespace=GATEWAY_NAMESPACE, kernel_namespace_selector="team=data") as gw:
        admin = gw.cluster.admin
        await admin.create("namespaces", {"metadata": {"name": "data-kernels", "labels": {"team": "data"}}})
        await admin.create("serviceaccounts", {"metadata": {"name": "data-sa"}}, namespace="data-kernels")
        await admin.create("namespaces", {"metadata": {"name": "ml-kernels", "labels": {"team": "ml"}}})
        await admin.create("serviceaccounts", {"metadata": {"name": "ml-sa"}}, namespace="ml-kernels")

        message = await refused(gw, {"KERNEL_NAMESPACE": "ml-kernels", "KERNEL_SERVICE_ACCOUNT_NAME": "ml-sa"})
        assert "'team=data'" in message
        kernel = await gw.start_kernel(KERNEL_NAMESPACE="data-kernels", KERNEL_SERVICE_ACCOUNT_NAME="data-sa")
        pods = await admin.list("pods", namespace="data-kernels", label_selector=f"kernel_id={kernel['id']}")
        assert len(pods["items"]) == 1


def test_settings_come_from_eg_style_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EG_KERNEL_NAMESPACE_SELECTOR", "kernels=allowed, tier!=system")
    monkeypatch.setenv("EG_SERVICE_ACCOUNT_NAME", "gw-sa")
    settings = GatewayConfig().provisioner_settings()
    assert settings.kernel_namespace_selector == "kernels=allowed, tier!=system"
    assert settings.gateway_service_account == "gw-sa"

    monkeypatch.delenv("EG_KERNEL_NAMESPACE_SELECTOR")
    monkeypatch.delenv("EG_SERVICE_ACCOUNT_NAME")
    settings = GatewayConfig().provisioner_settings()
    assert settings.kernel_namespace_selector == "app=enterprise-gateway,component=kernel"
    assert settings.gateway_service_account == GATEWAY_ACCOUNT


@pytest.mark.parametrize("selector", ["app in (a,b)", "app=a,,component=kernel", "app=not valid", "=x"])
def test_a_selector_the_gateway_cannot_apply_stops_it_at_startup(monkeypatch: pytest.MonkeyPatch,
                                                                 selector: str) -> None:
    monkeypatch.setenv("EG_KERNEL_NAMESPACE_SELECTOR", selector)
    with pytest.raises(ConfigError, match="EG_KERNEL_NAMESPACE_SELECTOR"):
        GatewayConfig()


@pytest.mark.parametrize(("selector", "labels", "matches"), [
    ("app=enterprise-gateway,component=kernel", {"app": "enterprise-gateway", "component": "kernel"}, True),
    ("app=enterprise-gateway,component=kernel", {"app": "enterprise-gateway"}, False),
    ("app==enterprise-gateway", {"app": "enterprise-gateway", "x": "y"}, True),
    ("tier!=system", {}, True),
    ("tier!=system", {"tier": "system"}, False),
    ("kernels", {"kernels": ""}, True),
    ("!system", {"system": "true"}, False),
    ("", {"anything": "at all"}, True),
])
def test_selector_terms_match_as_kubernetes_matches_them(selector: str, labels: dict[str, str],
                                                         matches: bool) -> None:
    assert all(term.matches(labels) for term in parse_selector(selector)) is matches
