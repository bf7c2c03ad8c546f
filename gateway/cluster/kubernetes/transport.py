"""One request to the API server through the official client: built, authenticated, sent, its failure ours.

The blocking half of the adapter: :func:`send` and :func:`request` run in the adapter's worker
threads (and :func:`send` in a watch's reader thread), never on the event loop.  Requests go
through the generic ``ApiClient.call_api`` of the adapter's current
:class:`~gateway.cluster.kubernetes.credentials.Credentials`; bodies stay wire-format JSON.  A
401 or a failed TLS handshake re-reads the credentials and, when they changed (a rotated token,
a new CA), sends the request once more: it was never served, so sending it again is safe.  Every
failure becomes our error (:mod:`gateway.cluster.status`), raised from the library error that
caused it: :func:`raise_status` for an answer with a failure status, :func:`transport_error` for
a request that got no answer.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from gateway.cluster.interface import ClusterError, ServerError, ServiceUnavailable, Timeout, UntrustedServer
from gateway.cluster.status import from_status

from .credentials import Credentials

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
    credentials: Credentials,
    method: str,
    path: str,
    *,
    query: Mapping[str, Any] | None = None,
    body: Any = None,
    content_type: str = JSON,
    timeout: tuple[float, float | None],
) -> Any:
    """Send one request with the current credentials and return the unread response (blocking).

    Re-reads the credentials first when their refresh interval has passed, and again after a 401
    or a failed TLS handshake, then sends once more if they changed.
    """
    credentials.refresh()
    api = credentials.api
    try:
        response = _send(api, method, path, query, body, content_type, timeout)
    except UntrustedServer:
        if not _renewed(credentials, api):
            raise
        return _send(credentials.api, method, path, query, body, content_type, timeout)
    if response.status == 401 and _renewed(credentials, api):
        _discard(response)
        return _send(credentials.api, method, path, query, body, content_type, timeout)
    return response


def _renewed(credentials: Credentials, used: ApiClient) -> bool:
    """Whether credentials other than ``used`` are there now: read again at once, or by a request in another thread."""
    return credentials.refresh(now=True) or credentials.api is not used


def _send(api: ApiClient, method: str, path: str, query: Mapping[str, Any] | None, body: Any, content_type: str,
          timeout: tuple[float, float | None]) -> Any:
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


def _discard(response: Any) -> None:
    try:
        response.read()
    except Exception:  # an answer thrown away: its connection goes with it
        response.response.close()


def request(
    credentials: Credentials,
    method: str,
    path: str,
    query: Mapping[str, Any] | None,
    body: Any,
    content_type: str,
    timeout: tuple[float, float],
) -> bytes:
    """One whole request (blocking): send, read the body, raise our error for a failure status."""
    response = send(credentials, method, path, query=query, body=body, content_type=content_type, timeout=timeout)
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
    if _tls_failure(exc):
        return UntrustedServer(f"the TLS handshake with the API server failed: {_tls_reason(exc)}")
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return ServiceUnavailable(f"cannot connect to the API server: {reason}")
    if isinstance(reason, urllib3.exceptions.TimeoutError | TimeoutError):
        return Timeout(f"the API server did not answer in time: {reason}")
    if isinstance(reason, ApiException):  # the client's wrapping of TLS failures
        return ServiceUnavailable(f"cannot reach the API server: {reason.reason}")
    if isinstance(reason, urllib3.exceptions.HTTPError | OSError):
        return ServiceUnavailable(f"lost the connection to the API server: {reason}")
    return ServerError(f"the request to the API server failed: {exc!r}")


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc``, what urllib3 says caused it, and what it was raised from or during."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen) or len(seen) > 10:
            continue
        seen.append(current)
        todo += [getattr(current, "reason", None) if isinstance(current, urllib3.exceptions.MaxRetryError) else None,
                 current.__cause__, current.__context__]
    return seen


_TRUST_FAILURES = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "UNKNOWN_CA", "BAD_CERTIFICATE",
                   "CERTIFICATE_REQUIRED", "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED")
"""OpenSSL's words for a certificate one side does not trust: unlike a connection cut mid-stream
(``SSLEOFError``), waiting does not repair these."""


def _tls_failure(exc: BaseException) -> bool:
    """Whether the request failed because a certificate was not trusted (the server's, after a CA change,
    or the gateway's client certificate); the client's ApiException wraps urllib3's SSLError."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        if isinstance(cause, ssl.SSLError | urllib3.exceptions.SSLError | ApiException):
            text = str(getattr(cause, "reason", "") or "") + " " + str(cause)
            if any(word in text for word in _TRUST_FAILURES):
                return True
    return False


def _tls_reason(exc: BaseException) -> str:
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError) and cause.verify_message:
            return f"certificate verify failed: {cause.verify_message}"
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLError):
            return str(cause.reason or cause)
    return " ".join(str(exc).split())[:200]
