"""The gateway's Prometheus metrics, served at ``/metrics`` (:mod:`gateway.http.metrics`).

One :class:`GatewayMetrics` per gateway, made by the composition root with a registry of its
own (never ``prometheus_client``'s global one), so several gateways in one process each
report their own numbers.  Two kinds of metric live here:

* what happens, counted where it happens by one call on this object: kernel starts (by
  kernelspec and outcome) and their start-to-ready duration, restarts (requested or
  automatic), culls, launch failures, HTTP requests (latency by route and status), errors of
  the Kubernetes API (by verb, resource and status), events that could not be written;
* what is, read when Prometheus scrapes: kernels by state, open websocket connections, and
  the health of the informers (synced, last sync, relists, watch errors).  The parts that
  know these register a view (:meth:`GatewayMetrics.watch_kernels`, ...), read at each scrape.

Every label takes values from a small set the gateway chooses (route templates, kernelspec
names the gateway offers, status codes), never a client's free text, so the number of series
stays bounded.  The module imports nothing of the gateway, so every layer may report here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "GatewayMetrics", "InformerView"]

START_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0)
"""Seconds from a start request to a kernel that answers: a pod's scheduling, image pull and kernel start."""
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Seconds per HTTP request: most answer from memory; a start or restart waits for a kernel."""
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class InformerView(Protocol):
    """What :meth:`GatewayMetrics.watch_informer` reads of an informer at each scrape: ``has_synced``, and its
    ``health`` (``ready``, ``last_sync``, ``relists``, ``watch_errors``: :mod:`gateway.cluster.informerhealth`)."""

    @property
    def has_synced(self) -> bool: ...


class GatewayMetrics:
    """The metrics of one gateway and the registry they are exposed from (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.kernel_starts = Counter(
            "kernelgate_kernel_starts", "Kernel start requests by kernelspec and outcome "
            "(ready, refused: a 4xx answer, failed: a 5xx answer, cancelled: the gateway stopped).",
            ["kernelspec", "outcome"], registry=r)
        self.kernel_start_seconds = Histogram(
            "kernelgate_kernel_start_duration_seconds", "Seconds from a start request to a kernel that answers.",
            ["kernelspec"], buckets=START_BUCKETS, registry=r)
        self.kernel_restarts = Counter(
            "kernelgate_kernel_restarts", "Kernel restarts carried out by this replica: requested by a client, "
            "or automatic (the kernel's pod died).", ["kind"], registry=r)
        self.kernel_culls = Counter(
            "kernelgate_kernel_culls", "Kernels shut down by this replica for being idle (EG_CULL_IDLE_TIMEOUT).",
            registry=r)
        self.launch_failures = Counter(
            "kernelgate_kernel_launch_failures", "Kernel pods that could not be launched, by reason.",
            ["reason"], registry=r)
        self.http_seconds = Histogram(
            "kernelgate_http_request_duration_seconds", "HTTP requests by method, route and status, in seconds.",
            ["method", "route", "status"], buckets=HTTP_BUCKETS, registry=r)
        self.api_errors = Counter(
            "kernelgate_kubernetes_api_errors", "Errors answered by the Kubernetes API, by verb, resource and status.",
            ["verb", "resource", "status"], registry=r)
        self.events_dropped = Counter(
            "kernelgate_events_dropped", "Kubernetes Events about kernels that could not be written.",
            registry=r)
        self._views = _Views()
        r.register(self._views)

    # ------------------------------------------------------------------ what happens

    def start_ended(self, kernelspec: str, outcome: str, seconds: float | None = None) -> None:
        """A start request ended with ``outcome``; ``seconds`` from request to ready when it is ``ready``."""
        self.kernel_starts.labels(kernelspec, outcome).inc()
        if seconds is not None:
            self.kernel_start_seconds.labels(kernelspec).observe(seconds)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request answered (called as each request is logged)."""
        method = method if method in HTTP_METHODS else "other"
        self.http_seconds.labels(method, route, str(status)).observe(seconds)

    def api_error(self, verb: str, resource: str, status: int) -> None:
        """A Kubernetes API call answered with an error."""
        self.api_errors.labels(verb, resource, str(status)).inc()

    # ------------------------------------------------------------------ what is, read at each scrape

    def watch_kernels(self, states: Callable[[], Iterable[str]], all_states: Sequence[str]) -> None:
        """Report ``kernelgate_kernels{state}``: ``states()`` gives each listed kernel's state; every state of
        ``all_states`` is reported, with 0 when no kernel is in it."""
        self._views.kernels = (states, tuple(all_states))

    def watch_websockets(self, count: Callable[[], int], kept: Callable[[], tuple[int, int]] | None = None) -> None:
        """Report ``kernelgate_websocket_connections``: ``count()`` open kernel websockets; and with ``kept``,
        ``kernelgate_websocket_sessions_kept`` and ``kernelgate_websocket_kept_bytes``: the sessions of clients whose
        websocket dropped, kept for their return, and the bytes of frames they hold (``kept()``)."""
        self._views.websockets = count
        self._views.kept = kept

    def watch_informer(self, name: str, informer: InformerView) -> None:
        """Report the health of the informer ``name`` (``pods``, ``records``)."""
        self._views.informers[name] = informer

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (what ``/metrics`` answers)."""
        return generate_latest(self.registry)


class _Views:
    """The metrics read at each scrape from the views the gateway's parts registered."""

    def __init__(self) -> None:
        self.kernels: tuple[Callable[[], Iterable[str]], tuple[str, ...]] | None = None
        self.websockets: Callable[[], int] | None = None
        self.kept: Callable[[], tuple[int, int]] | None = None
        self.informers: dict[str, InformerView] = {}

    def describe(self) -> list[Metric]:
        return []  # names are fixed here; nothing to check against the registry at registration

    def collect(self) -> Iterator[Metric]:
        if self.kernels is not None:
            states, all_states = self.kernels
            counts = dict.fromkeys(all_states, 0)
            for state in states():
                counts[state] = counts.get(state, 0) + 1
            kernels = GaugeMetricFamily("kernelgate_kernels", "Kernels this replica serves, by state.",
                                        labels=["state"])
            for state, count in counts.items():
                kernels.add_metric([state], count)
            yield kernels
        if self.websockets is not None:
            yield GaugeMetricFamily("kernelgate_websocket_connections", "Open kernel websocket connections.",
                                    value=self.websockets())
        if self.kept is not None:
            sessions, kept_bytes = self.kept()
            yield GaugeMetricFamily("kernelgate_websocket_sessions_kept", "Sessions of kernel websocket clients "
                                    "that dropped, kept for their return (EG_BUFFER_OFFLINE_MESSAGES).", value=sessions)
            yield GaugeMetricFamily("kernelgate_websocket_kept_bytes", "Bytes of kernel messages the kept sessions "
                                    "hold for their clients.", value=kept_bytes)
        if self.informers:
            yield from _informer_metrics(self.informers)


def _informer_metrics(informers: dict[str, InformerView]) -> Iterator[Metric]:
    ready = GaugeMetricFamily("kernelgate_informer_ready", "1 while the informer's cache can be trusted "
                              "(synced, or failing for less than the readiness grace).", labels=["informer"])
    last_sync = GaugeMetricFamily("kernelgate_informer_last_sync_timestamp_seconds",
                                  "When a list, watch event or watch renewal of the informer last worked (Unix time).",
                                  labels=["informer"])
    relists = CounterMetricFamily("kernelgate_informer_relists", "Lists after the first: the watch could not "
                                  "resume (410 Gone, or a failure).", labels=["informer"])
    errors = CounterMetricFamily("kernelgate_informer_watch_errors", "List and watch requests that failed.",
                                 labels=["informer"])
    for name, informer in sorted(informers.items()):
        health = getattr(informer, "health", None)
        is_ready = getattr(health, "ready", None)
        ready.add_metric([name], 1.0 if (informer.has_synced if is_ready is None else is_ready) else 0.0)
        for family, attribute in ((last_sync, "last_sync"), (relists, "relists"), (errors, "watch_errors")):
            value = _number(health, attribute)
            if value is not None:
                family.add_metric([name], value)
    yield from (ready, last_sync, relists, errors)


def _number(health: object, attribute: str) -> float | None:
    """A figure of an informer's health (a wall-clock moment, a count), if it has one yet."""
    value = getattr(health, attribute, None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
