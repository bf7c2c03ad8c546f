"""The JSON error bodies: every failure's status and ``{"reason", "message"}``, never internals."""

from __future__ import annotations

from tornado import web

from gateway.http.errors import error_body
from gateway.kernels.errors import InvalidKernelRequest, KernelLaunchFailed, KernelNotFound
from gateway.provisioner.errors import ImagePullFailed, LaunchTimeout


def test_kernel_errors_keep_their_status_and_message() -> None:
    assert error_body(500, KernelNotFound("Kernel does not exist: k1")) == (
        404, {"reason": "Not Found", "message": "Kernel does not exist: k1"})
    assert error_body(500, InvalidKernelRequest("KERNEL_ID must be a canonical uuid4."))[0] == 400
    assert error_body(500, KernelLaunchFailed("Waited too long", status=504)) == (
        504, {"reason": "Gateway Timeout", "message": "Waited too long"})


def test_launch_errors_keep_their_status_and_reason() -> None:
    assert error_body(500, ImagePullFailed("Image x cannot be pulled.")) == (
        500, {"reason": "Internal Server Error", "message": "Image x cannot be pulled."})
    assert error_body(500, LaunchTimeout("Waited too long."))[0] == LaunchTimeout.status


def test_http_errors_format_their_message() -> None:
    assert error_body(404, web.HTTPError(404, "No such resource: %s", "/x")) == (
        404, {"reason": "Not Found", "message": "No such resource: /x"})
    assert error_body(405, web.HTTPError(405)) == (405, {"reason": "Method Not Allowed", "message": "Method Not Allowed"})


def test_unexpected_errors_do_not_leak_their_text() -> None:
    status, body = error_body(500, RuntimeError("token=s3cret in /etc/secret"))
    assert status == 500 and "s3cret" not in body["message"] and body["reason"] == "Internal Server Error"
