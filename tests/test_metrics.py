"""``/metrics``: what an operator's Prometheus reads after kernels lived, parsed with prometheus_client's own parser.

A kernel's whole life goes through the HTTP API on the embedded simulated cluster (start,
execute over the websocket, restart, shutdown), with a refused start and a failed one; the
scrapes in between and after are parsed and their numbers checked.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from fakes.node.kernel_images import repository_root
from gateway.cluster.interface import Forbidden
from gateway.observability.metrics import GatewayMetrics
from tests.httpharness import USER, execute, running_gateway

TOKEN = "s3cret"
MISSING_IMAGE = "registry.example.com/nobody/kernel-py:404"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape: ``(name, sorted labels) -> value``."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


async def scrape(gw) -> Samples:
    status, _, headers = await gw.call("GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    response = await gw.http.fetch(gw.url + "/metrics", headers={"Authorization": f"token {TOKEN}"})
    return parse(response.body.decode())


def broken_kernelspec(tmp_path: Path) -> Path:
    """``broken_kubernetes``: python_kubernetes with an image no registry has."""
    specs = tmp_path / "kernelspecs"
    shutil.copytree(repository_root() / "kernelspecs" / "python_kubernetes", specs / "python_kubernetes")
    shutil.copytree(repository_root() / "kernelspecs" / "python_kubernetes", specs / "broken_kubernetes")
    kernel_json = json.loads((specs / "broken_kubernetes" / "kernel.json").read_text())
    kernel_json["metadata"]["process_proxy"]["config"]["image_name"] = MISSING_IMAGE
    (specs / "broken_kubernetes" / "kernel.json").write_text(json.dumps(kernel_json))
    return specs


async def test_a_kernels_life_is_counted_in_the_scraped_metrics(tmp_path: Path) -> None:
    specs = broken_kernelspec(tmp_path)
    async with running_gateway(tmp_path, auth_token=TOKEN, kernel_spec_paths=[str(specs)]) as gw:
        status, kernel, _ = await gw.call("POST", "/api/kernels", {"name": "python_kubernetes",
                                                                  "env": {"KERNEL_USERNAME": USER}})
        assert status == 201, kernel
        kernel_id = kernel["id"]
        ws = await gw.websocket(kernel_id)
        assert (await execute(ws, "6 * 7")).results == ["42"]

        during = await scrape(gw)
        assert value(during, "kernelgate_websocket_connections") == 1
        assert value(during, "kernelgate_kernels", state="idle") == 1
        assert value(during, "kernelgate_kernels", state="dead") == 0
        for informer in ("pods", "records"):
            assert value(during, "kernelgate_informer_ready", informer=informer) == 1
            assert value(during, "kernelgate_informer_last_sync_timestamp_seconds", informer=informer) > 0
            assert ("kernelgate_informer_watch_errors_total", (("informer", informer),)) in during
            assert ("kernelgate_informer_relists_total", (("informer", informer),)) in during

        status, _, _ = await gw.call("POST", f"/api/kernels/{kernel_id}/restart", {})
        assert status == 200
        status, _, _ = await gw.call("DELETE", f"/api/kernels/{kernel_id}")
        assert status == 204
        status, _, _ = await gw.call("POST", "/api/kernels", {"name": "no_such_kernelspec"})
        assert status == 404
        status, _, _ = await gw.call("POST", "/api/kernels", {"name": "broken_kubernetes",
                                                              "env": {"KERNEL_USERNAME": USER}})
        assert status == 500

        after = await scrape(gw)

    starts = "kernelgate_kernel_starts_total"
    assert value(after, starts, kernelspec="python_kubernetes", outcome="ready") == 1
    assert value(after, starts, kernelspec="unknown", outcome="refused") == 1
    assert value(after, starts, kernelspec="broken_kubernetes", outcome="failed") == 1
    assert total(after, starts) == 3
    durations = "kernelgate_kernel_start_duration_seconds"
    assert value(after, f"{durations}_count", kernelspec="python_kubernetes") == 1
    assert 0 < value(after, f"{durations}_sum", kernelspec="python_kubernetes") < 60
    assert total(after, f"{durations}_count") == 1  # only starts that ended ready are timed
    assert value(after, "kernelgate_kernel_restarts_total", kind="requested") == 1
    assert value(after, "kernelgate_kernel_restarts_total", kind="automatic") == 0
    assert value(after, "kernelgate_kernel_launch_failures_total", reason="ImagePullFailed") == 1
    assert value(after, "kernelgate_kernel_culls_total") == 0
    assert total(after, "kernelgate_kernels") == 0  # shut down: nothing listed

    http = "kernelgate_http_request_duration_seconds_count"
    assert value(after, http, method="POST", route="/api/kernels", status="201") == 1
    assert value(after, http, method="POST", route="/api/kernels/{kernel_id}/{action}", status="200") == 1
    assert value(after, http, method="DELETE", route="/api/kernels/{kernel_id}", status="204") == 1
    assert value(after, http, method="GET", route="/api/kernels/{kernel_id}/channels", status="101") == 1
    assert value(after, http, method="GET", route="/metrics", status="200") >= 2
    assert not any(kernel_id in str(labels) for _, labels in after), "no kernel id in any label"


async def test_metrics_ask_for_the_token_unless_the_operator_opens_them(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, auth_token=TOKEN) as gw:
        assert (await gw.call("GET", "/metrics", token=""))[0] == 401
        assert (await gw.call("GET", "/metrics"))[0] == 200
    async with running_gateway(tmp_path, auth_token=TOKEN, metrics_auth=False) as gw:
        status, _, _ = await gw.call("GET", "/metrics", token="")
        assert status == 200
        assert (await gw.call("GET", "/api/kernels", token=""))[0] == 401  # the rest of the API stays closed


async def test_api_errors_are_counted_by_verb_resource_and_status(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, auth_token=TOKEN) as gw:
        gw.cluster.store.faults.inject("create", "pods", error=Forbidden("pods is forbidden"), times=1)
        status, _, _ = await gw.call("POST", "/api/kernels", {"env": {"KERNEL_USERNAME": USER}})
        assert status == 403
        samples = await scrape(gw)
    assert value(samples, "kernelgate_kubernetes_api_errors_total", verb="create", resource="pods",
                 status="403") == 1


def test_each_gateway_keeps_its_own_registry() -> None:
    """Two gateways in one process (the replica tests run several) count apart, in registries of their own."""
    first, second = GatewayMetrics(), GatewayMetrics()
    first.kernel_culls.inc()
    assert parse(first.exposition().decode())[("kernelgate_kernel_culls_total", ())] == 1
    assert parse(second.exposition().decode())[("kernelgate_kernel_culls_total", ())] == 0
