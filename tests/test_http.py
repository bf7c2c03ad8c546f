"""The gateway's REST API on the embedded simulated cluster, with real kernels: every route, every refusal.

Each refusal is answered with its status and a JSON ``{"reason", "message"}``
body, and leaves nothing in the cluster (no pod, namespace, role binding,
secret...: the admin's view of the store is compared before and after).
"""

from __future__ import annotations

import json
import shutil
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from fakes.node.kernel_images import repository_root
from gateway.http.sessionstore import MAX_SESSIONS
from tests.counting import CountingCluster
from tests.httpharness import USER, execute, running_gateway

pytestmark = pytest.mark.slow


def but_leases(calls: Any) -> dict[tuple[str, str], int]:
    """API calls but the duties' Lease renewals (per gateway, not per kernel)."""
    return {call: n for call, n in calls.items() if call[1] != "leases"}


def assert_error(status: int, body: Any, expected: int) -> None:
    assert status == expected, body
    assert isinstance(body, dict) and set(body) >= {"reason", "message"}, body
    assert body["reason"] and body["message"]


async def test_version_and_probes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_gateway(tmp_path) as gw:
        def no_reads(distribution: str) -> str:
            raise AssertionError(f"{distribution}'s metadata read from disk while serving a request")

        monkeypatch.setattr(metadata, "version", no_reads)  # the versions are read once, at start-up
        status, body, _ = await gw.call("GET", "/api")
        assert status == 200
        assert body["version"].count(".") >= 2 and body["gateway_version"]
        assert body["gateway_version"] != "0"  # kernelgate's own, as installed
        assert (await gw.call("GET", "/healthz"))[0] == 200
        status, body, _ = await gw.call("GET", "/readyz")
        assert status == 200 and body["checks"] == {"informer": True, "records": True, "response_listener": True}

        await gw.gateway.listener.stop()  # launchers could no longer call back: not ready
        status, body, _ = await gw.call("GET", "/readyz")
        assert_error(status, body, 503)
        assert "response_listener" in body["message"]


async def test_kernelspecs(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, unauthorized_users=["mallory"]) as gw:
        status, body, _ = await gw.call("GET", "/api/kernelspecs")
        assert status == 200
        assert body["default"] == "python_kubernetes"
        spec = body["kernelspecs"]["python_kubernetes"]
        assert spec["spec"]["language"] == "python"
        assert spec["spec"]["metadata"]["process_proxy"]["class_name"].endswith("KubernetesProcessProxy")
        logo = spec["resources"]["logo-64x64"]
        assert logo == "/kernelspecs/python_kubernetes/logo-64x64.png"

        status, one, _ = await gw.call("GET", "/api/kernelspecs/python_kubernetes")
        assert status == 200 and one == spec
        status, body, _ = await gw.call("GET", "/api/kernelspecs/no_such_kernel")
        assert_error(status, body, 404)

        status, body, _ = await gw.call("GET", "/api/kernelspecs?user=mallory")
        assert status == 200 and body["kernelspecs"] == {}
        status, body, _ = await gw.call("GET", f"/api/kernelspecs?user={USER}")
        assert "python_kubernetes" in body["kernelspecs"]

        response = await gw.http.fetch(gw.url + logo, raise_error=False)
        assert response.code == 200
        assert response.headers["Content-Type"] == "image/png"
        assert response.body.startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("resource", ["..%2Fpython_kubernetes%2Fkernel.json", "scripts%2F..%2F..%2F..%2Fpyproject.toml",
                                      "%2Fetc%2Fpasswd", "no-such-logo.png", "scripts%2F"])
async def test_kernelspec_resources_stay_in_the_kernelspec_folder(tmp_path: Path, resource: str) -> None:
    async with running_gateway(tmp_path) as gw:
        status, body, _ = await gw.call("GET", f"/kernelspecs/python_kubernetes/{resource}")
        assert_error(status, body, 404)


async def test_kernel_lifecycle_through_rest(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        before = await gw.objects()
        status, model, headers = await gw.call("POST", "/api/kernels",
                                               {"name": "python_kubernetes", "env": {"KERNEL_USERNAME": USER}})
        assert status == 201, model
        kernel_id = model["id"]
        assert headers["Location"] == f"/api/kernels/{kernel_id}"
        assert model["name"] == "python_kubernetes" and model["execution_state"] in ("idle", "starting")
        assert set(model) >= {"id", "name", "last_activity", "execution_state", "connections"}
        assert await gw.kernel_objects(), "the kernel runs as a pod in its own namespace"

        status, listing, _ = await gw.call("GET", "/api/kernels")
        assert status == 200 and [k["id"] for k in listing] == [kernel_id]
        status, one, _ = await gw.call("GET", f"/api/kernels/{kernel_id}")
        assert status == 200 and one["id"] == kernel_id

        status, restarted, _ = await gw.call("POST", f"/api/kernels/{kernel_id}/restart")
        assert status == 200 and restarted["id"] == kernel_id
        status, body, _ = await gw.call("POST", f"/api/kernels/{kernel_id}/interrupt")
        assert status == 204 and body is None

        status, body, _ = await gw.call("DELETE", f"/api/kernels/{kernel_id}")
        assert status == 204
        status, body, _ = await gw.call("GET", f"/api/kernels/{kernel_id}")
        assert_error(status, body, 404)
        assert (await gw.call("GET", "/api/kernels"))[1] == []
        assert await gw.objects() == before


async def test_kernel_username_defaults_to_the_gateway_user(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, unauthorized_users=[]) as gw:
        status, model, _ = await gw.call("POST", "/api/kernels", {})
        assert status == 201, model
        pods = await gw.cluster.admin.list("pods", label_selector=f"kernel_id={model['id']}")
        env = {e["name"]: e.get("value") for e in pods["items"][0]["spec"]["containers"][0]["env"]}
        assert env["KERNEL_USERNAME"] == gw.gateway.context.settings.gateway_user


BAD_STARTS: list[tuple[str, Any, int]] = [
    ("unknown kernelspec", {"name": "no_such_kernel", "env": {"KERNEL_USERNAME": USER}}, 404),
    ("env value with $", {"env": {"KERNEL_USERNAME": USER, "KERNEL_EXTRA": "$(reboot)"}}, 400),
    ("env value with a backtick", {"env": {"KERNEL_USERNAME": USER, "KERNEL_EXTRA": "`id`"}}, 400),
    ("env value with a newline", {"env": {"KERNEL_USERNAME": "alice\nroot"}}, 400),
    ("env value too long", {"env": {"KERNEL_USERNAME": USER, "KERNEL_EXTRA": "x" * 4097}}, 400),
    ("env value not a string", {"env": {"KERNEL_USERNAME": USER, "KERNEL_EXTRA": 3}}, 400),
    ("env not an object", {"env": ["KERNEL_USERNAME"]}, 400),
    ("name not a string", {"name": ["python_kubernetes"]}, 400),
    ("body not an object", ["python_kubernetes"], 400),
    ("KERNEL_ID not a uuid", {"env": {"KERNEL_USERNAME": USER, "KERNEL_ID": "kernel-1"}}, 400),
    ("KERNEL_ID a uuid1", {"env": {"KERNEL_USERNAME": USER, "KERNEL_ID": str(uuid.uuid1())}}, 400),
    ("bad launch timeout", {"env": {"KERNEL_USERNAME": USER, "KERNEL_LAUNCH_TIMEOUT": "-5"}}, 400),
    ("unauthorized user", {"env": {"KERNEL_USERNAME": "root"}}, 403),
    ("user not in the authorized list", {"env": {"KERNEL_USERNAME": "bob"}}, 403),
]


@pytest.mark.parametrize(("case", "body", "expected"), BAD_STARTS, ids=[c[0] for c in BAD_STARTS])
async def test_bad_start_requests_are_refused_and_leave_nothing(tmp_path: Path, case: str, body: Any,
                                                               expected: int) -> None:
    async with running_gateway(tmp_path, authorized_users=[USER, "root"]) as gw:
        before = await gw.objects()
        status, answer, _ = await gw.call("POST", "/api/kernels", body)
        assert_error(status, answer, expected)
        assert (await gw.call("GET", "/api/kernels"))[1] == []
        assert await gw.objects() == before


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b'{"name": "python_kubernetes"'])
async def test_a_body_that_is_not_json_is_a_400(tmp_path: Path, raw: bytes) -> None:
    async with running_gateway(tmp_path) as gw:
        before = await gw.objects()
        status, body, _ = await gw.call("POST", "/api/kernels", raw=raw)
        assert_error(status, body, 400)
        assert await gw.objects() == before


async def test_a_failed_launch_is_answered_and_leaves_nothing(tmp_path: Path) -> None:
    specs = tmp_path / "kernelspecs"
    broken = specs / "broken_kubernetes"
    shutil.copytree(repository_root() / "kernelspecs" / "python_kubernetes", broken)
    kernel_json = json.loads((broken / "kernel.json").read_text())
    kernel_json["metadata"]["process_proxy"]["config"]["image_name"] = "registry.example.com/nobody/kernel-py:404"
    (broken / "kernel.json").write_text(json.dumps(kernel_json))
    async with running_gateway(tmp_path, kernel_spec_paths=[str(specs)]) as gw:
        before = await gw.objects()
        status, body, _ = await gw.call("POST", "/api/kernels", {"name": "broken_kubernetes",
                                                                 "env": {"KERNEL_USERNAME": USER}})
        assert_error(status, body, 500)
        assert "image" in body["message"].lower()
        assert (await gw.call("GET", "/api/kernels"))[1] == []
        assert await gw.objects() == before


async def test_kernel_limits(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, max_kernels_per_user=1, max_kernels=2) as gw:
        await gw.start_kernel()
        before = await gw.objects()
        status, body, _ = await gw.call("POST", "/api/kernels", {"env": {"KERNEL_USERNAME": USER}})
        assert_error(status, body, 403)
        assert await gw.objects() == before

        await gw.start_kernel(KERNEL_USERNAME="bob")
        before = await gw.objects()
        status, body, _ = await gw.call("POST", "/api/kernels", {"env": {"KERNEL_USERNAME": "carol"}})
        assert_error(status, body, 403)
        assert await gw.objects() == before
        assert len((await gw.call("GET", "/api/kernels"))[1]) == 2


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("DELETE", ""), ("POST", "/restart"),
                                                ("POST", "/interrupt")])
async def test_unknown_kernel_ids_are_404(tmp_path: Path, method: str, suffix: str) -> None:
    async with running_gateway(tmp_path) as gw:
        status, body, _ = await gw.call(method, f"/api/kernels/{uuid.uuid4()}{suffix}")
        assert_error(status, body, 404)


async def test_unknown_paths_and_methods_answer_json(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        for method, path, expected in [("GET", "/nowhere", 404), ("POST", "/api/kernels/x/y/z", 404),
                                       ("PUT", "/api", 405), ("PATCH", "/api/kernels", 405),
                                       ("DELETE", "/api/kernelspecs", 405), ("GET", "/api/kernels/x/restart", 405)]:
            status, body, headers = await gw.call(method, path, raw=b"{}" if method != "GET" else None)
            assert_error(status, body, expected)
            assert headers["Content-Type"] == "application/json"


async def test_listing_kernels_can_be_disabled(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, list_kernels=False) as gw:
        status, body, _ = await gw.call("GET", "/api/kernels")
        assert_error(status, body, 403)


async def test_token_is_required_when_configured(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, auth_token="s3cret") as gw:
        before = await gw.objects()
        for token in ("", "wrong", "s3cret-but-longer"):
            for path in ("/api", "/api/kernels", "/api/kernelspecs", "/kernelspecs/python_kubernetes/logo-64x64.png",
                         "/nowhere"):
                status, body, _ = await gw.call("GET", path, token=token)
                assert_error(status, body, 401)
            status, body, _ = await gw.call("POST", "/api/kernels", {"env": {"KERNEL_USERNAME": USER}}, token=token)
            assert_error(status, body, 401)
        assert await gw.objects() == before

        assert (await gw.call("GET", "/api"))[0] == 200  # Authorization: token s3cret
        assert (await gw.call("GET", "/api", headers={"Authorization": "Bearer s3cret"}, token=""))[0] == 200
        assert (await gw.call("GET", "/api?token=s3cret", token=""))[0] == 200
        assert (await gw.call("GET", "/healthz", token=""))[0] == 200
        assert (await gw.call("GET", "/readyz", token=""))[0] == 200

        kernel = await gw.start_kernel()
        from tornado.httpclient import HTTPClientError

        for query in ("", "?token=wrong"):
            with pytest.raises(HTTPClientError) as refused:
                gw.token, saved = "", gw.token
                try:
                    await gw.websocket(kernel["id"], query=query)
                finally:
                    gw.token = saved
            assert refused.value.code == 401
        ws = await gw.websocket(kernel["id"], query="?token=s3cret")
        assert (await execute(ws, "1+1")).results == ["2"]
        ws.close()


async def test_websocket_to_an_unknown_kernel_is_a_404(tmp_path: Path) -> None:
    from tornado.httpclient import HTTPClientError

    async with running_gateway(tmp_path) as gw:
        with pytest.raises(HTTPClientError) as refused:
            await gw.websocket(str(uuid.uuid4()))
        assert refused.value.code == 404


async def test_a_kernel_keeps_a_bounded_number_of_sessions(tmp_path: Path) -> None:
    """Sessions live in the kernel's record, which no API server stores past 1 MiB: one more than the bound is a
    409 the client can act on (not the API server's refusal as a 500), and the kernel's sessions stay as they were."""
    async with running_gateway(tmp_path, unauthorized_users=[]) as gw:
        status, first, _ = await gw.call("POST", "/api/sessions", {
            "path": "0.ipynb", "type": "notebook", "kernel": {"name": "python_kubernetes"}})
        assert status == 201, first
        kernel = {"id": first["kernel"]["id"]}
        long = "p" * 4000
        for i in range(1, MAX_SESSIONS):
            status, body, _ = await gw.call("POST", "/api/sessions", {"path": f"{i}-{long}", "type": "console",
                                                                      "name": long, "kernel": kernel})
            assert status == 201, body
        status, body, _ = await gw.call("POST", "/api/sessions", {"path": f"more-{long}", "type": "console",
                                                                  "name": long, "kernel": kernel})
        assert_error(status, body, 409)
        assert f"has {MAX_SESSIONS} sessions" in body["message"]
        assert len((await gw.call("GET", "/api/sessions"))[1]) == MAX_SESSIONS
        status, renamed, _ = await gw.call("PATCH", f"/api/sessions/{first['id']}", {"path": "renamed.ipynb"})
        assert status == 200 and renamed["path"] == "renamed.ipynb"


async def test_sessions(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, unauthorized_users=[]) as gw:
        before = await gw.objects()
        status, session, headers = await gw.call("POST", "/api/sessions", {
            "path": "notebooks/a.ipynb", "type": "notebook", "name": "a.ipynb",
            "kernel": {"name": "python_kubernetes"}})
        assert status == 201, session
        assert headers["Location"] == f"/api/sessions/{session['id']}"
        assert session["path"] == "notebooks/a.ipynb" and session["type"] == "notebook"
        kernel_id = session["kernel"]["id"]
        assert (await gw.call("GET", f"/api/kernels/{kernel_id}"))[0] == 200

        status, again, _ = await gw.call("POST", "/api/sessions", {"path": "notebooks/a.ipynb", "type": "notebook"})
        assert status == 201 and again["id"] == session["id"]
        status, listing, _ = await gw.call("GET", "/api/sessions")
        assert [s["id"] for s in listing] == [session["id"]]

        status, moved, _ = await gw.call("PATCH", f"/api/sessions/{session['id']}", {"path": "b.ipynb"})
        assert status == 200 and moved["path"] == "b.ipynb" and moved["kernel"]["id"] == kernel_id
        status, one, _ = await gw.call("GET", f"/api/sessions/{session['id']}")
        assert one == moved

        status, switched, _ = await gw.call("PATCH", f"/api/sessions/{session['id']}",
                                            {"kernel": {"name": "python_kubernetes"}})
        assert status == 200 and switched["kernel"]["id"] != kernel_id
        assert_error(*(await gw.call("GET", f"/api/kernels/{kernel_id}"))[:2], 404)  # the old one was shut down
        kernel_id = switched["kernel"]["id"]

        status, body, _ = await gw.call("POST", "/api/sessions", {"path": "c.ipynb"})
        assert_error(status, body, 400)
        status, body, _ = await gw.call("POST", "/api/sessions", {"path": "c.ipynb", "type": "notebook",
                                                                    "kernel": {"id": str(uuid.uuid4())}})
        assert_error(status, body, 400)
        status, body, _ = await gw.call("GET", f"/api/sessions/{uuid.uuid4()}")
        assert_error(status, body, 404)

        status, _, _ = await gw.call("DELETE", f"/api/sessions/{session['id']}")
        assert status == 204
        assert_error(*(await gw.call("GET", f"/api/kernels/{kernel_id}"))[:2], 404)
        assert (await gw.call("GET", "/api/sessions"))[1] == []
        assert await gw.objects() == before


async def test_idle_kernels_cost_the_cluster_no_api_calls(tmp_path: Path) -> None:
    """Kernels used and listed, but not started or stopped, make no request to the cluster (the duties' Lease
    renewals, once per gateway whatever its kernels, aside)."""
    counting: list[CountingCluster] = []

    def wrap(cluster: Any) -> Any:
        counting.append(CountingCluster(cluster))
        return counting[0]

    async with running_gateway(tmp_path, wrap=wrap) as gw:
        kernels = [await gw.start_kernel(), await gw.start_kernel(KERNEL_USERNAME="bob")]
        calls = but_leases(counting[0].calls)
        assert calls, "starting kernels did call the cluster"
        for kernel in kernels:
            ws = await gw.websocket(kernel["id"])
            assert (await execute(ws, "sum(range(10))")).results == ["45"]
            ws.close()
            assert (await gw.call("GET", f"/api/kernels/{kernel['id']}"))[0] == 200
        assert len((await gw.call("GET", "/api/kernels"))[1]) == 2
        assert (await gw.call("GET", "/readyz"))[0] == 200
        assert but_leases(counting[0].calls) == calls


async def test_every_route_lives_under_the_base_url(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, base_url="/gateway/") as gw:
        assert gw.url.endswith("/gateway")
        assert (await gw.call("GET", "/api"))[0] == 200
        status, specs, _ = await gw.call("GET", "/api/kernelspecs")
        logo = specs["kernelspecs"]["python_kubernetes"]["resources"]["logo-64x64"]
        assert logo == "/gateway/kernelspecs/python_kubernetes/logo-64x64.png"
        response = await gw.http.fetch(gw.url.removesuffix("/gateway") + logo, raise_error=False)
        assert response.code == 200
        status, model, headers = await gw.call("POST", "/api/kernels", {"env": {"KERNEL_USERNAME": USER}})
        assert status == 201 and headers["Location"] == f"/gateway/api/kernels/{model['id']}"
        ws = await gw.websocket(model["id"])
        assert (await execute(ws, "1+1")).results == ["2"]
        response = await gw.http.fetch(gw.url.removesuffix("/gateway") + "/api", raise_error=False)
        assert response.code == 404
