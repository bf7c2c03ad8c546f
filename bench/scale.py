"""A gateway following thousands of kernels: more kernel pods than this machine could run.

One real kernel is started through a gateway; its pod (and namespace) and its record are then
copied through the API as many times as asked, each copy under a new kernel id, its pod bound
to ``sim-node`` (a node that runs no processes) with the running status such a node would write.
A new gateway then follows them all.  Measured with 10 kernels and with the full count, the
same way each time:

* how long the gateway takes from its start to serving (its informers listing every kernel's
  pod and record first), and its RSS then;
* ``GET /api/kernels`` (median of 20);
* a new kernel's start -> ready (median of 3) among them.

A gateway that cannot start with the full count is reported with its reason, and measured again
with its ZeroMQ socket limit raised (``bench/gatewayproc.py``), to show what limits it next.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import statistics
import time
import uuid
from typing import Any

from bench.history import change
from bench.procs import ClusterProcess, GatewayProcess, rss_kib
from bench.starts import GatewayClient
from gateway.cluster.kubernetes import KubernetesCluster
from gateway.objects.record import RECORD_KEY, RECORD_SELECTOR

FULL_KERNELS = 5000
QUICK_KERNELS = 1000
SMALL = 10
SIM_NODE = "sim-node"
CONCURRENCY = 16
GET_ROUNDS = 20
NEW_STARTS = 3


class Template:
    """The objects of one real kernel, and how to copy them under another id."""

    def __init__(self, kernel_id: str, pod: dict[str, Any], record: dict[str, Any], namespace: dict[str, Any] | None):
        self.kernel_id = kernel_id
        self.pod = pod
        self.record = record
        self.namespace = namespace
        self.pod_ip = pod["status"]["podIP"]
        self.pod_uid = pod["metadata"]["uid"]

    def _renamed(self, obj: dict[str, Any], kernel_id: str, pod_ip: str) -> dict[str, Any]:
        text = json.dumps(obj).replace(self.kernel_id, kernel_id).replace(self.pod_ip, pod_ip)
        copied = json.loads(text)
        for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"):
            copied["metadata"].pop(key, None)
        return copied

    async def copy(self, api: KubernetesCluster, index: int) -> None:
        """Create copy number ``index``: namespace, pod (bound to ``sim-node``, running), record."""
        kernel_id = str(uuid.uuid4())
        pod_ip = f"10.{200 + index // 65000}.{index // 250 % 256}.{index % 250 + 1}"
        if self.namespace is not None:
            await api.create("namespaces", self._renamed(self.namespace, kernel_id, pod_ip))
        pod = self._renamed(self.pod, kernel_id, pod_ip)
        status = pod.pop("status")
        pod["spec"]["nodeName"] = SIM_NODE
        namespace = pod["metadata"]["namespace"]
        created = await api.create("pods", pod, namespace=namespace)
        status["hostIP"] = "10.199.0.1"
        await api.replace("pods", created["metadata"]["name"], dict(created, status=status), namespace=namespace,
                          subresource="status")
        secret = self._renamed(self.record, kernel_id, pod_ip)
        text = base64.b64decode(self.record["data"][RECORD_KEY]).decode()
        text = text.replace(self.kernel_id, kernel_id).replace(self.pod_ip, pod_ip)
        text = text.replace(self.pod_uid, created["metadata"]["uid"])
        secret["data"] = {RECORD_KEY: base64.b64encode(text.encode()).decode()}
        await api.create("secrets", secret, namespace=secret["metadata"]["namespace"])


async def read_template(api: KubernetesCluster, kernel_id: str) -> Template:
    selector = f"kernel_id={kernel_id}"
    pods = (await api.list("pods", label_selector=selector))["items"]
    records = (await api.list("secrets", label_selector=f"{RECORD_SELECTOR},{selector}"))["items"]
    pod = pods[0]
    namespace_name = pod["metadata"]["namespace"]
    namespace = None
    if kernel_id in namespace_name:  # the kernel's own namespace: each copy gets its own too
        namespace = await api.get("namespaces", namespace_name)
    return Template(kernel_id, copy.deepcopy(pod), copy.deepcopy(records[0]), namespace)


async def copies(api: KubernetesCluster, template: Template, start: int, stop: int) -> None:
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(index: int) -> None:
        async with slots:
            await template.copy(api, index)

    await asyncio.gather(*(one(i) for i in range(start, stop)))


async def follow(kubeconfig: str, kernels: int, tag: str, env: dict[str, str] | None = None) -> dict[str, float]:
    """Start a gateway on the cluster as it is now and measure it (see the module docstring)."""
    begin = time.perf_counter()
    gateway = await asyncio.to_thread(GatewayProcess, kubeconfig, env)
    serving = time.perf_counter() - begin
    try:
        client = GatewayClient(gateway.url)
        listed = await client.fetch("/api/kernels")
        assert isinstance(listed, list)
        rss = rss_kib(gateway.pid)
        synced = (await gateway.counters())["informer_sync_s"]
        latencies = []
        for _ in range(GET_ROUNDS):
            t = time.perf_counter()
            await client.fetch("/api/kernels")
            latencies.append(time.perf_counter() - t)
        starts = []
        for _ in range(NEW_STARTS):
            started = await client.start()
            starts.append(started.seconds)
            await started.stop()
    finally:
        gateway.stop()
    return {
        f"{tag}_listed": len(listed),
        f"{tag}_gateway_start_to_serving_s": serving,
        f"{tag}_informer_sync_s": sum(synced.values()),
        f"{tag}_gateway_rss_mib": rss / 1024,
        f"{tag}_get_kernels_ms": 1000 * statistics.median(latencies),
        f"{tag}_new_start_s": statistics.median(starts),
    }


async def run(*, quick: bool) -> dict[str, float]:
    """The whole scale measurement (called by ``bench/kernel_starts.py``)."""
    total = QUICK_KERNELS if quick else FULL_KERNELS
    cluster = ClusterProcess()
    api = KubernetesCluster.from_kubeconfig(cluster.kubeconfig, max_workers=CONCURRENCY)
    figures: dict[str, float] = {"scale_kernels": total}
    try:
        gateway = await asyncio.to_thread(GatewayProcess, cluster.kubeconfig)
        try:
            started = await GatewayClient(gateway.url).start()  # stays in the cluster after its gateway stops
        finally:
            gateway.stop()
        template = await read_template(api, started.kernel_id)
        await copies(api, template, 1, SMALL)
        figures.update(await follow(cluster.kubeconfig, SMALL, f"scale{SMALL}"))
        begin = time.perf_counter()
        await copies(api, template, SMALL, total)
        figures["scale_copies_per_s"] = (total - SMALL) / (time.perf_counter() - begin)
        try:
            figures.update(await follow(cluster.kubeconfig, total, f"scale{total}"))
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[-1]
            print(f"a gateway following {total} kernels did not start: {reason}")
            figures["scale_stock_failure"] = reason  # type: ignore[assignment]
            raised = {"KERNELGATE_BENCH_ZMQ_MAX_SOCKETS": str(4 * total + 1024)}
            figures.update(await follow(cluster.kubeconfig, total, f"scale{total}", raised))
            figures["scale_zmq_max_sockets_raised"] = 1
    finally:
        await api.close()
        cluster.stop()
    figures["scale_total"] = total
    return figures


def report(figures: dict[str, Any], before: dict[str, Any] | None) -> None:
    total = figures["scale_total"]
    small, large = f"scale{SMALL}", f"scale{total}"
    print(f"\nsimulated scale: {total} kernels (pods on a node that runs no processes), one gateway following them")
    if figures.get("scale_stock_failure"):
        print(f"  as shipped, the gateway did not start with {total} kernels ({figures['scale_stock_failure']});")
        print("  the figures below are with its ZeroMQ context's socket limit raised")
    print(f"{'':<38} {SMALL:>10} {total:>10}   ratio")
    for key, label in (("listed", "kernels listed"), ("gateway_start_to_serving_s", "gateway start -> serving (s)"),
                       ("informer_sync_s", "informers' first list, summed (s)"),
                       ("gateway_rss_mib", "gateway RSS (MiB)"), ("get_kernels_ms", "GET /api/kernels (ms)"),
                       ("new_start_s", "a new kernel's start -> ready (s)")):
        a, b = figures.get(f"{small}_{key}"), figures.get(f"{large}_{key}")
        if a is None or b is None:
            continue
        ratio = b / a if a else float("nan")
        print(f"{label:<38} {a:>10.4g} {b:>10.4g}   {ratio:5.2f}x  {change(b, before, f'{large}_{key}')}")
