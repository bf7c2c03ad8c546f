"""One request to the API server through the official client: built, authenticated, sent, its failure ours.

The blocking half of the adapter: :func:`send` and :func:`request` run in the adapter's worker
threads (and :func:`send` in a watch's reader thread), never on the event loop.  Requests go
through the generic ``ApiClient.call_api`` with the bearer token the client keeps fresh; bodies
stay wire-format JSON.  Every failure becomes our error (:mod:`gateway.cluster.status`), raised
from the library error that caused it: :func:`raise_status` for an answer with a failure
status, :func:`transport_error` for a request that got no answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from gateway.cluster.interface import ClusterError, ServerError, ServiceUnavailable, Timeout
from gateway.cluster.status import from_status

JSON = "application/json"

THREAD_PREFIX = "kernelgate-k8s"
"""Names of the threads the adapter starts (workers and watch readers)."""


def retries() -> urllib3.Retry:
    """The client's retry policy unless its configuration sets one: failed connects only."""
    # A request that reached the server may have taken effect (a create), and retrying read
    # timeouts would multiply every timeout.  A 429's Retry-After is the caller's to honour
    # (TooManyRequests.retry_after_seconds).
    return urllib3.Retry(
        total=2, connect=2, read=0, redirect=0, status=0, other=0, respect_retry_after_header=False
    )


def pool_size(max_workers: int) -> int:
    """Connections to keep per host: one per worker, plus room for long-lived watches."""
    return max_workers + 16


def send(
    api: ApiClient,
    method: str,
    path: str,
    *,
    query: Mapping[str, Any] | None = None,
    body: Any = None,
    content_type: str = JSON,
    timeout: tuple[float, float | None],
) -> Any:
    """Send one request and return the unread response (blocking)."""
    url = api.configuration.host + path
    if query:
        url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
    headers = dict(api.default_headers)
    headers["Accept"] = JSON
    if body is not None:
        headers["Content-Type"] = content_type
    # Adds the bearer token, re-reading it first when it rotates (exec plugins, projected tokens).
    api.update_params_for_auth(headers, [], ["BearerToken"], path, method, body)
    try:
        return api.call_api(method, url, header_params=headers, body=body, _request_timeout=timeout)
    except Exception as exc:
        raise transport_error(exc) from exc


def request(
    api: ApiClient,
    method: str,
    path: str,
    query: Mapping[str, Any] | None,
    body: Any,
    content_type: str,
    timeout: tuple[float, float],
) -> bytes:
    """One whole request (blocking): send, read the body, raise our error for a failure status."""
    response = send(api, method, path, query=query, body=body, content_type=content_type, timeout=timeout)
    try:
        data: bytes = response.read()
    except Exception as exc:
        raise transport_error(exc) from exc
    if response.status >= 400:
        raise_status(response.status, data, response)
    return data


def raise_status(code: int, body: bytes | str, response: Any = None) -> None:
    """Raise our error for a failed answer, chained to the client's exception for it."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        raise ApiException(status=code, reason=getattr(response, "reason", None), body=text)
    except ApiException as exc:
        raise from_status(code, text) from exc


def transport_error(exc: BaseException) -> ClusterError:
    """Our error for a request that got no HTTP answer."""
    if isinstance(exc, ClusterError):
        return exc
    reason: BaseException = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        reason = exc.reason
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return ServiceUnavailable(f"cannot connect to the API server: {reason}")
    if isinstance(reason, urllib3.exceptions.TimeoutError | TimeoutError):
        return Timeout(f"the API server did not answer in time: {reason}")
    if isinstance(reason, ApiException):  # the client's wrapping of TLS failures
        return ServiceUnavailable(f"cannot reach the API server: {reason.reason}")
    if isinstance(reason, urllib3.exceptions.HTTPError | OSError):
        return ServiceUnavailable(f"lost the connection to the API server: {reason}")
    return ServerError(f"the request to the API server failed: {exc!r}")
