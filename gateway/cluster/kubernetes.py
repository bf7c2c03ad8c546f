"""The real cluster adapter: :class:`~gateway.cluster.interface.Cluster` over the official ``kubernetes`` client.

This is the only module that imports ``kubernetes``.  It uses the client for
what it does well (reading kubeconfig and in-cluster credentials, TLS, bearer
token refresh, the urllib3 connection pool) and nothing else: requests go
through the generic ``ApiClient.call_api`` with paths from
:mod:`gateway.cluster.resources`, and bodies stay wire-format JSON (the
generated model classes are slow and drop fields they do not know).

The client is synchronous, so every request runs in a bounded pool of worker
threads and the event loop only awaits; a watch holds a thread of its own that
hands decoded events to the loop.  Every request has a connect and a read
timeout.  Failures become our errors (:mod:`gateway.cluster.status`), raised
from the library error that caused them; HTTP status codes never leave here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import socket
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.client.rest import RESTClientObject

from gateway.cluster.interface import (
    BadRequest,
    ClusterError,
    Obj,
    PatchType,
    Propagation,
    ServerError,
    ServiceUnavailable,
    Timeout,
    WatchEvent,
)
from gateway.cluster.resources import resource_type
from gateway.cluster.status import from_status

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 16
"""Requests in flight at once; more wait for a worker (the loop stays free)."""

DEFAULT_TIMEOUT = (5.0, 30.0)
"""(connect, read) seconds for every non-watch request."""

WATCH_READ_GRACE = 10.0
"""How much longer than its ``timeoutSeconds`` a watch may stay silent before the client gives up."""

UNBOUNDED_WATCH_SILENCE = 3660.0
# Without timeoutSeconds a real server ends a watch after minRequestTimeout*(1+rand) with
# minRequestTimeout 1800 s by default (k8s.io/apiserver/pkg/endpoints/handlers/get.go, ListResource);
# a stream silent for longer than that is a dead connection.

THREAD_PREFIX = "kernelgate-k8s"
"""Names of the threads this adapter starts (workers and watch readers)."""

_JSON = "application/json"


def _retries() -> urllib3.Retry:
    # Retry only failures to connect: a request that reached the server may have taken
    # effect (a create), and retrying read timeouts would multiply every timeout.  A 429's
    # Retry-After is the caller's to honour (TooManyRequests.retry_after_seconds).
    return urllib3.Retry(
        total=2, connect=2, read=0, redirect=0, status=0, other=0, respect_retry_after_header=False
    )


class KubernetesCluster:
    """A :class:`~gateway.cluster.interface.Cluster` on a real API server (or the simulated one).

    Built by the composition root with :meth:`from_kubeconfig` (outside a pod,
    or against the simulated cluster) or :meth:`in_cluster` (the gateway's own
    service account); ``KubernetesCluster(api_client)`` adopts a configured
    client: it resizes the client's connection pool for ``max_workers``
    concurrent requests plus watches, retries only failed connects (unless the
    configuration sets ``retries``), and :meth:`close` closes it.
    """

    def __init__(
        self,
        api_client: ApiClient,
        *,
        max_workers: int = DEFAULT_WORKERS,
        request_timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        configuration = api_client.configuration
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, pool_size(max_workers))
        if configuration.retries is None:
            configuration.retries = _retries()
        # Pin the proxy taken from the environment: otherwise the kubeconfig token refresh,
        # which runs before every request, re-reads the whole environment each time.
        configuration.proxy = configuration.proxy
        api_client.rest_client.close()
        api_client.rest_client = RESTClientObject(configuration)
        self._api = api_client
        self._timeout = request_timeout
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix=THREAD_PREFIX)
        self._watches: set[_WatchStream] = set()
        self._closed = False

    @classmethod
    def from_kubeconfig(
        cls, path: str | None = None, context: str | None = None, *, max_workers: int = DEFAULT_WORKERS, **kwargs: Any
    ) -> KubernetesCluster:
        """Connect as a kubeconfig file says (``$KUBECONFIG``'s first file or ``~/.kube/config`` by default).

        Reads the file: call it at startup, not on a hot path of the loop.
        """
        configuration = Configuration()
        kube_config.load_kube_config(
            config_file=path, context=context, client_configuration=configuration, persist_config=False
        )
        return cls(ApiClient(configuration), max_workers=max_workers, **kwargs)

    @classmethod
    def in_cluster(cls, *, max_workers: int = DEFAULT_WORKERS, **kwargs: Any) -> KubernetesCluster:
        """Connect as the pod's service account (its projected token is re-read as it rotates)."""
        configuration = Configuration()
        kube_config.load_incluster_config(client_configuration=configuration)
        return cls(ApiClient(configuration), max_workers=max_workers, **kwargs)

    @property
    def host(self) -> str:
        """The API server's URL."""
        return str(self._api.configuration.host)

    # ------------------------------------------------------------------ requests

    def _open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = _JSON,
        timeout: tuple[float, float | None],
    ) -> Any:
        """Send one request and return the unread response.  Runs in a worker or watch thread."""
        url = self._api.configuration.host + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        headers = dict(self._api.default_headers)
        headers["Accept"] = _JSON
        if body is not None:
            headers["Content-Type"] = content_type
        # Adds the bearer token, re-reading it first when it rotates (exec plugins, projected tokens).
        self._api.update_params_for_auth(headers, [], ["BearerToken"], path, method, body)
        try:
            return self._api.call_api(method, url, header_params=headers, body=body, _request_timeout=timeout)
        except Exception as exc:
            raise _transport_error(exc) from exc

    def _request_blocking(self, method: str, path: str, query: Mapping[str, Any] | None, body: Any, content_type: str) -> bytes:
        """One whole request: send, read the body, raise our error for a failure status."""
        response = self._open(method, path, query=query, body=body, content_type=content_type, timeout=self._timeout)
        try:
            data: bytes = response.read()
        except Exception as exc:
            raise _transport_error(exc) from exc
        if response.status >= 400:
            _raise_status(response.status, data, response)
        return data

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = _JSON,
    ) -> bytes:
        """Run one request in the worker pool; the event loop only awaits it."""
        if self._closed:
            raise ServiceUnavailable("the cluster connection is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._request_blocking, method, path, query, body, content_type
        )

    async def _json(self, method: str, path: str, **kwargs: Any) -> Obj:
        data = await self._request(method, path, **kwargs)
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise ServerError(f"the API server sent a body that is not JSON: {data[:200]!r}") from exc
        if not isinstance(obj, dict):
            raise ServerError(f"the API server sent JSON that is not an object: {data[:200]!r}")
        return obj

    # ------------------------------------------------------------------ the interface

    async def create(self, resource: str, body: Mapping[str, Any], *, namespace: str | None = None) -> Obj:
        return await self._json("POST", resource_type(resource).path(namespace), body=dict(body))

    async def get(self, resource: str, name: str, *, namespace: str | None = None) -> Obj:
        return await self._json("GET", resource_type(resource).path(namespace, name))

    async def list(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Obj:
        query = {"labelSelector": label_selector or None, "fieldSelector": field_selector or None}
        return await self._json("GET", resource_type(resource).path(namespace), query=query)

    async def replace(
        self,
        resource: str,
        name: str,
        body: Mapping[str, Any],
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> Obj:
        return await self._json("PUT", resource_type(resource).path(namespace, name, subresource), body=dict(body))

    async def patch(
        self,
        resource: str,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: PatchType = PatchType.MERGE,
        subresource: str | None = None,
    ) -> Obj:
        if PatchType(patch_type) is PatchType.JSON and not isinstance(patch, list):
            # The client would silently resend a non-list JSON patch as a strategic merge patch.
            raise BadRequest("a JSON patch is a list of operations")
        return await self._json(
            "PATCH",
            resource_type(resource).path(namespace, name, subresource),
            body=patch,
            content_type=PatchType(patch_type).value,
        )

    async def delete(
        self,
        resource: str,
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        propagation_policy: Propagation | None = None,
    ) -> Obj:
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy is not None:
            options["propagationPolicy"] = Propagation(propagation_policy).value
        return await self._json("DELETE", resource_type(resource).path(namespace, name), body=options)

    def watch(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: float | None = None,
        allow_bookmarks: bool = False,
    ) -> _WatchStream:
        query: dict[str, Any] = {
            "watch": "1",
            "labelSelector": label_selector or None,
            "fieldSelector": field_selector or None,
            "resourceVersion": resource_version or None,
            "allowWatchBookmarks": "true" if allow_bookmarks else None,
        }
        silence = UNBOUNDED_WATCH_SILENCE
        if timeout_seconds is not None:
            query["timeoutSeconds"] = max(1, math.ceil(timeout_seconds))
            silence = query["timeoutSeconds"] + WATCH_READ_GRACE
        return _WatchStream(self, resource_type(resource).path(namespace), query, (self._timeout[0], silence))

    async def bind_pod(self, name: str, namespace: str, node_name: str) -> None:
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        await self._json("POST", resource_type("pods").path(namespace, name, "binding"), body=binding)

    async def read_pod_log(
        self, name: str, namespace: str, *, container: str | None = None, tail_lines: int | None = None
    ) -> str:
        query = {"container": container, "tailLines": tail_lines}
        data = await self._request("GET", resource_type("pods").path(namespace, name, "log"), query=query)
        return data.decode("utf-8", errors="replace")

    async def create_token(self, service_account: str, namespace: str, *, expiration_seconds: int = 3600) -> str:
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": expiration_seconds},
        }
        path = resource_type("serviceaccounts").path(namespace, service_account, "token")
        answer = await self._json("POST", path, body=request)
        token = (answer.get("status") or {}).get("token")
        if not token:
            raise ServerError("the TokenRequest answer carries no token")
        return str(token)

    async def can_i(
        self,
        verb: str,
        resource: str,
        *,
        namespace: str | None = None,
        group: str = "",
        subresource: str = "",
        name: str = "",
    ) -> bool:
        attributes = {
            "verb": verb,
            "resource": resource,
            "group": group,
            "subresource": subresource,
            "name": name,
            "namespace": namespace or "",
        }
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {k: v for k, v in attributes.items() if v}},
        }
        answer = await self._json("POST", resource_type("selfsubjectaccessreviews").path(), body=review)
        return bool((answer.get("status") or {}).get("allowed"))

    async def version(self) -> Obj:
        """The server's build information (``GET /version``): a cheap check that it answers."""
        return await self._json("GET", "/version")

    async def close(self) -> None:
        """End open watches, stop the worker threads and close the connections.

        When it returns, no thread this adapter started is alive.
        """
        if self._closed:
            return
        self._closed = True
        watches = list(self._watches)
        for stream in watches:
            stream._interrupt()
        # Joining threads blocks, so it happens off the loop (in the loop's own executor).
        await asyncio.to_thread(self._shutdown_blocking, [w._thread for w in watches if w._thread is not None])

    def _shutdown_blocking(self, watch_threads: Sequence[threading.Thread]) -> None:
        for thread in watch_threads:
            thread.join(self._timeout[0] + 1)
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._api.close()


def pool_size(max_workers: int) -> int:
    """Connections to keep per host: one per worker, plus room for long-lived watches."""
    return max_workers + 16


# ---------------------------------------------------------------------- errors


def _raise_status(code: int, body: bytes | str, response: Any = None) -> None:
    """Raise our error for a failed answer, chained to the client's exception for it."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        raise ApiException(status=code, reason=getattr(response, "reason", None), body=text)
    except ApiException as exc:
        raise from_status(code, text) from exc


def _transport_error(exc: BaseException) -> ClusterError:
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


# ---------------------------------------------------------------------- watch


class _WatchStream:
    """One watch request, as an async iterator of :class:`WatchEvent`.

    A reader thread (started by the first ``__anext__``) sends the streaming GET,
    splits the chunked body into JSON lines, and hands each decoded event to the
    loop through an ``asyncio.Queue``.  ``aclose()`` shuts the socket down so the
    thread's blocked read returns at once, then waits for the thread to end.
    """

    def __init__(self, cluster: KubernetesCluster, path: str, query: dict[str, Any], timeout: tuple[float, float]) -> None:
        self._cluster = cluster
        self._path = path
        self._query = query
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._interrupted = False
        self._finished = False

    def __aiter__(self) -> _WatchStream:
        return self

    async def __anext__(self) -> WatchEvent:
        if self._finished:
            raise StopAsyncIteration
        if self._thread is None:
            self._start()
        kind, value = await self._queue.get()
        if kind == "event":
            return value  # type: ignore[no-any-return]
        self._finished = True
        await self._join()
        if kind == "error":
            raise value
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop the stream early (or clean up after its end); returns once the reader thread is gone."""
        self._finished = True
        self._interrupt()
        await self._join()

    async def __aenter__(self) -> _WatchStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _start(self) -> None:
        if self._cluster._closed:
            raise ServiceUnavailable("the cluster connection is closed")
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._read, name=f"{THREAD_PREFIX}-watch", daemon=True)
        self._cluster._watches.add(self)
        self._thread.start()

    async def _join(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            # The thread is at its last steps (or its socket was just shut down).
            await asyncio.to_thread(thread.join, self._timeout[0] + 1)
        self._cluster._watches.discard(self)

    def _interrupt(self) -> None:
        """Make the reader thread stop: shut its socket down so a blocked read returns."""
        with self._lock:
            self._interrupted = True
            sock = self._socket
        if sock is None:
            return  # not connected yet: the thread sees the flag once its request returns
        # The plain socket's shutdown, not SSLSocket.shutdown: that one unwraps TLS, and a
        # read racing it would then take ciphertext for plain HTTP.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

    # -- the reader thread

    def _post(self, kind: str, value: Any = None) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed under us: nobody is listening
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))

    def _read(self) -> None:
        response = None
        try:
            response = self._cluster._open("GET", self._path, query=self._query, timeout=self._timeout)
            # This connection ends with the watch (closed below, shut down by _interrupt), so
            # urllib3 must not hand it back to the pool when the body ends.
            response.response._pool = None
            with self._lock:
                if self._interrupted:
                    return
                self._socket = getattr(response.response.connection, "sock", None)
            if response.status >= 400:
                _raise_status(response.status, response.read(), response)
            pending = b""
            for chunk in _chunks(response.response):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        self._post("event", _decode_event(line))
            if pending.strip():
                self._post("event", _decode_event(pending))
        except Exception as exc:
            if not self._interrupted:
                error = exc if isinstance(exc, ClusterError) else _transport_error(exc)
                if error is not exc:
                    error.__cause__ = exc
                self._post("error", error)
        finally:
            with self._lock:
                self._socket = None
            if response is not None:
                with contextlib.suppress(Exception):
                    response.response.close()
            self._post("end")


def _chunks(response: urllib3.HTTPResponse) -> Any:
    """The body as it arrives: each HTTP chunk (watches are chunked), else whatever one read returns."""
    if response.chunked and response.supports_chunked_reads():
        yield from response.read_chunked(None, decode_content=True)
        return
    while data := response.read1(65536):
        yield data


def _decode_event(line: bytes) -> WatchEvent:
    """One line of a watch stream; an ``ERROR`` event (a Status) is raised as our error."""
    try:
        raw = json.loads(line)
        kind, obj = raw["type"], raw["object"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ServerError(f"the API server sent a watch line that is not an event: {line[:200]!r}") from exc
    if kind == "ERROR":
        _raise_status(int(obj.get("code") or 500), json.dumps(obj))
    return WatchEvent(str(kind), obj)
