"""Requests the gateway refuses: the status a client can act on, a JSON reason, and nothing left in the cluster."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .client import KERNEL_NAME, GatewayClient
from .observe import every_kernel_object, namespace_names
from .targets import Endpoint
from .variants import GATEWAY_NAMESPACE

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow]

UNKNOWN = str(uuid.uuid4())


def _start(**env: str) -> dict[str, Any]:
    return {"name": KERNEL_NAME, "env": {"KERNEL_USERNAME": "alice", **env}}


REFUSED = [
    pytest.param("POST", "/api/kernels", None, b"{not json", 400, id="body-not-json"),
    pytest.param("POST", "/api/kernels", ["python_kubernetes"], None, 400, id="body-not-an-object"),
    pytest.param("POST", "/api/kernels", {"name": "no_such_kernel"}, None, 404, id="unknown-kernelspec"),
    pytest.param("POST", "/api/kernels", _start(KERNEL_ID="not-a-uuid"), None, 400, id="kernel-id-not-a-uuid"),
    pytest.param("POST", "/api/kernels", _start(KERNEL_NAMESPACE="Not_A_Namespace!"), None, 400,
                 id="namespace-name-invalid"),
    pytest.param("POST", "/api/kernels", _start(KERNEL_NAMESPACE=f"missing-{UNKNOWN[:8]}"), None, 400,
                 id="namespace-missing"),
    pytest.param("POST", "/api/kernels", _start(KERNEL_WORKING_DIR="$(rm -rf /)"), None, 400,
                 id="env-value-with-shell-syntax"),
    pytest.param("POST", "/api/kernels", _start(**{f"KERNEL_V{i}": "v" * 4096 for i in range(64)}), None, 400,
                 id="env-larger-than-a-record-holds"),
    pytest.param("POST", "/api/kernels", _start(KERNEL_NAMESPACE=GATEWAY_NAMESPACE), None, 403,
                 id="the-gateways-namespace"),
    pytest.param("POST", "/api/kernels", _start(KERNEL_NAMESPACE="default"), None, 403,
                 id="a-namespace-not-prepared-for-kernels"),
    pytest.param("POST", "/api/kernels", _start(KERNEL_UID="0"), None, 403, id="root-uid"),
    pytest.param("POST", "/api/kernels", {"name": KERNEL_NAME, "env": {"KERNEL_USERNAME": "root"}}, None, 403,
                 id="unauthorized-user"),
    pytest.param("GET", f"/api/kernels/{UNKNOWN}", None, None, 404, id="get-unknown-kernel"),
    pytest.param("DELETE", f"/api/kernels/{UNKNOWN}", None, None, 404, id="delete-unknown-kernel"),
    pytest.param("POST", f"/api/kernels/{UNKNOWN}/restart", None, None, 404, id="restart-unknown-kernel"),
    pytest.param("POST", f"/api/kernels/{UNKNOWN}/interrupt", None, None, 404, id="interrupt-unknown-kernel"),
    pytest.param("GET", "/api/kernelspecs/no_such_kernel", None, None, 404, id="unknown-kernelspec-get"),
]


@pytest.mark.parametrize(("method", "path", "body", "raw", "expected"), REFUSED)
async def test_a_bad_request_is_refused_with_a_json_reason_and_leaves_nothing(
        gateway: Endpoint, client: GatewayClient, method: str, path: str, body: Any, raw: bytes | None,
        expected: int) -> None:
    objects, namespaces = await every_kernel_object(gateway.observer), await namespace_names(gateway.observer)
    status, answer = await client.call(method, path, body, raw=raw)
    assert status == expected, answer
    assert isinstance(answer, dict) and answer.get("reason") and answer.get("message"), answer
    assert await every_kernel_object(gateway.observer) - objects == set()
    assert await namespace_names(gateway.observer) - namespaces == set()


async def test_a_request_without_the_token_is_refused(gateway: Endpoint, client: GatewayClient) -> None:
    assert gateway.token, "every target's gateway requires a token"
    status, answer = await client.call("POST", "/api/kernels", _start(), token="")
    assert status == 401 and answer.get("reason"), answer
    status, answer = await client.call("GET", "/api/kernels", token="wrong-" + gateway.token)
    assert status == 401 and answer.get("reason"), answer
    status, listed = await client.call("GET", "/api/kernels")
    assert status == 200 and isinstance(listed, list)
