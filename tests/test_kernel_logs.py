"""Every log line about a kernel names it: ``kernel=<id>``, on the gateway's lines of a kernel's whole life.

The kernel lives through the HTTP API on the embedded simulated cluster: started, used over
its websocket, restarted, its pod deleted under it (an auto-restart), shut down; another is shut
down by the gateway's stop.  The log is
captured with the tag ``kernelgate`` puts on its handler (:class:`KernelLogFilter`); every
gateway line that mentions the kernel, its pod or its namespace must carry the kernel's id.  The
simulated cluster's own lines (``fakes``: its node agent is a kubelet) are not the gateway's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.objects import kernel_resource_name
from gateway.observability.logs import LOG_FORMAT, KernelLogFilter, kernel_logs
from tests.httpharness import USER, WAIT, execute, running_gateway

GATEWAY_LOGGERS = ("gateway", "tornado")


@pytest.fixture
def tagged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """``caplog`` at debug level, its handler tagging records as ``kernelgate``'s handler does."""
    tag = KernelLogFilter()
    caplog.handler.addFilter(tag)
    caplog.set_level(logging.DEBUG)
    yield caplog
    caplog.handler.removeFilter(tag)


def about(records: list[logging.LogRecord], *words: str) -> list[logging.LogRecord]:
    """The gateway's records whose message mentions any of ``words``."""
    return [r for r in records if r.name.split(".")[0] in GATEWAY_LOGGERS
            and any(word in r.getMessage() for word in words)]


async def test_every_gateway_line_about_a_kernel_carries_its_id(tmp_path: Path, tagged) -> None:
    async with running_gateway(tmp_path, auth_token="s3cret", restart_limit=3) as gw:
        status, kernel, _ = await gw.call("POST", "/api/kernels", {"env": {"KERNEL_USERNAME": USER}})
        assert status == 201, kernel
        kernel_id = kernel["id"]
        pod = kernel_resource_name(USER, kernel_id)  # also its namespace's name, the gateway's own
        ws = await gw.websocket(kernel_id)
        assert (await execute(ws, "1 + 1")).results == ["2"]
        assert (await gw.call("POST", f"/api/kernels/{kernel_id}/restart", {}))[0] == 200

        service = gw.gateway.service
        assert service is not None
        first_uid = service.get(kernel_id).running.pod_uid
        await gw.cluster.admin.delete("pods", pod, namespace=pod, grace_period_seconds=0)  # dies under it
        await service.get(kernel_id).wait_until(
            lambda k: k.running is not None and k.running.pod_uid != first_uid and k.state == "idle", WAIT)
        assert (await gw.call("DELETE", f"/api/kernels/{kernel_id}"))[0] == 204
        left = (await gw.start_kernel())["id"]  # shut down by the gateway's stop

    for kernel in (kernel_id, left):
        lines = about(tagged.records, kernel)  # the names of its pod and namespace hold its id too
        assert len(lines) >= 5, [r.getMessage() for r in tagged.records]
        untagged = [f"{r.name}: {r.getMessage()}" for r in lines if r.kernel_id != kernel]
        assert not untagged, "\n".join(untagged)
    assert any("restarting it" in r.getMessage() for r in about(tagged.records, kernel_id)), "the auto-restart"
    assert any("is gone" in r.getMessage() for r in about(tagged.records, left)), "the shutdown at the gateway's stop"


def test_a_line_names_the_kernel_at_its_end() -> None:
    """What an operator greps: ``kernel=<id>`` ends each line logged while handling the kernel, and no other."""
    handler = logging.StreamHandler()
    handler.addFilter(KernelLogFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    record = logging.LogRecord("gateway.kernels", logging.INFO, __file__, 1, "pod %s is running", ("p-1",), None)
    with kernel_logs("4f1c2a9e-0b7d-4c1e-9a55-3f0d2b6c8e11"):
        handler.filter(record)
        inside = handler.format(record)
    other = logging.LogRecord("gateway.kernels", logging.INFO, __file__, 1, "serving", (), None)
    handler.filter(other)
    assert inside.endswith("gateway.kernels: pod p-1 is running kernel=4f1c2a9e-0b7d-4c1e-9a55-3f0d2b6c8e11")
    assert handler.format(other).endswith("gateway.kernels: serving")
    forged = logging.LogRecord("gateway.http", logging.INFO, __file__, 1, "x", (), None)
    with kernel_logs("x\nFAKE LINE"):  # a client's "kernel id" from the URL is never put in a line as is
        handler.filter(forged)
    assert forged.kernel_id == ""
