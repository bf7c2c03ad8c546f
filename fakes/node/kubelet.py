"""The simulated node: a node agent that schedules pods onto itself and runs them as local processes.

:class:`NodeAgent` is started by the simulated cluster (``kernelgate cluster``)
and by tests, over any :class:`~gateway.cluster.interface.Cluster` opened as
the node's identity (``fakes.auth.identity.node_user``).  It plays two parts of a
real cluster for a single node:

* the scheduler: a pod without ``spec.nodeName`` whose ``nodeSelector`` and
  required node affinity match this node's labels is bound to it
  (``pods/binding``); one that does not match gets ``PodScheduled=False``
  ``Unschedulable``, as kube-scheduler reports it;
* the kubelet: it registers its ``Node``, keeps one pod watch (list, watch from
  the list's resourceVersion, relist on 410 Gone) and runs each pod bound to
  it through a :class:`~fakes.node.podworker.PodWorker`.

Beside a real kube-scheduler (``schedule=False``) the agent is the kubelet alone:
it lists and watches only the pods bound to it (``spec.nodeName=<node>``, the
only pod listing the Node authorizer allows a node) and, with
``lease_renew_seconds``, keeps its Lease in ``kube-node-lease`` fresh
(:mod:`fakes.node.heartbeat`).

Each pod gets its own loopback address (127.x.y.z, never 127.0.0.1) as its pod
IP, so servers in different pods bind the same port as they would in a cluster.
Given the API server's CA (``api_ca_pem``), the node also gives each pod its own
hostname, ``/etc/hosts`` and projected volumes (its service account's token, the
``ca.crt`` of its namespace's ``kube-root-ca.crt``: ``fakes.node.sandbox``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from fakes.node import podstatus as ps
from fakes.node.addresses import POD_IPS
from fakes.node.containers import read_log
from fakes.node.context import API_TIMEOUT, NodeContext, RestartBackoff
from fakes.node.heartbeat import NodeHeartbeat
from fakes.node.images import ImageMap
from fakes.node.podworker import PodWorker
from fakes.node.sandbox import SERVICE_ACCOUNT_PATH, namespaces_available
from fakes.node.scheduling import fits_node, unschedulable_message
from fakes.node.streaming import NodeStreaming
from gateway.aio import OwnedTasks
from gateway.cluster.interface import AlreadyExists, BadRequest, Cluster, ClusterError, Conflict, Gone, NotFound, Obj
from gateway.cluster.resources import TERMINAL_POD_PHASES

log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.32.0"
HOST_IP = "127.0.0.1"
SCHEDULER = "default-scheduler"
WATCH_TIMEOUT_SECONDS = 300  # the server ends each watch after this; the agent resumes from its last version
RETRY_SECONDS = 1.0  # after an unexpected watch error, before relisting


class NodeAgent:
    """A node of the simulated cluster: scheduler and kubelet for one node named ``node_name``.

    ``store``, when given, is the in-memory store, whose ``pods/log`` reads are
    routed here (``store.register_node_logs``).  ``backoff`` sets the restart and
    image-pull back-off (tests shorten it); ``shutdown_grace_seconds`` bounds how
    long :meth:`stop` lets containers handle SIGTERM.  ``api_ca_pem`` (with
    ``api_server_url``) says the node serves a cluster with an API server pods can reach: pods then
    get their own namespaces and volumes (the ``ca.crt`` they trust is the published ``kube-root-ca.crt``).  ``schedule=False``
    leaves binding to a real scheduler; ``lease_renew_seconds`` turns on the Lease heartbeat;
    ``kubelet_port`` is where the Node says its kubelet API listens (``fakes.node.kubeletapi``).
    """

    def __init__(
        self,
        cluster: Cluster,
        *,
        node_name: str = "node-1",
        images: ImageMap | None = None,
        work_dir: Path | None = None,
        api_server_url: str | None = None,
        store: Any = None,
        labels: dict[str, str] | None = None,
        backoff: RestartBackoff | None = None,
        shutdown_grace_seconds: float = 5.0,
        api_ca_pem: bytes | None = None,
        schedule: bool = True,
        lease_renew_seconds: float | None = None,
        kubelet_port: int = 10250,
    ) -> None:
        self.cluster = cluster
        self.node_name = node_name
        self.images = images if images is not None else ImageMap.default()
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix=f"kernelgate-{node_name}-"))
        self.api_server_url = api_server_url
        self.store = store
        self.labels = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": node_name,
            "kubernetes.io/os": "linux",
            **(labels or {}),
        }
        self.shutdown_grace_seconds = shutdown_grace_seconds
        self.schedule = schedule
        self.lease_renew_seconds = lease_renew_seconds
        self.kubelet_port = kubelet_port
        # With a real scheduler, only this node's pods concern the agent (and only those may it list).
        self._pod_selector = None if schedule else f"spec.nodeName={node_name}"
        self.ctx = NodeContext(
            cluster=cluster, node_name=node_name, images=self.images, work_dir=self.work_dir,
            record=self._record_kubelet_event, api_server_url=api_server_url, host_ip=HOST_IP,
            backoff=backoff or RestartBackoff(), allocatable=_capacity(), api_ca_pem=api_ca_pem,
            isolate_pods=api_ca_pem is not None and namespaces_available(),
        )
        if api_ca_pem is not None and not self.ctx.isolate_pods:
            log.warning("%s: pods get no service-account files at %s (a mount namespace per pod needs root and "
                        "util-linux's unshare)", node_name, SERVICE_ACCOUNT_PATH)
        self._workers: dict[str, PodWorker] = {}  # by pod uid
        self._by_name: dict[tuple[str, str], PodWorker] = {}
        self._scheduled: set[str] = set()  # uids of unbound pods already considered
        self._tasks = OwnedTasks(f"node {node_name}")
        self.streaming = NodeStreaming(lambda namespace, name: self._by_name.get((namespace, name)))
        """Exec, attach, port-forward and followed logs of this node's pods: what the API server proxies to."""
        self._stopping = False
        self._event_seq = 0

    # ---------------------------------------------------------------- public API

    async def start(self) -> None:
        """Register the Node, take over the pods already bound to it, and start watching pods.

        Returns once the initial list has been processed.
        """
        node_uid = await self._register_node()
        if self.lease_renew_seconds is not None:
            heartbeat = NodeHeartbeat(self.cluster, self.node_name, node_uid, self.lease_renew_seconds)
            self._tasks.spawn(heartbeat.run(), "node lease")
        if self.store is not None:
            self.store.register_node_logs(self.node_name, self.read_log)
        resource_version = await self._relist()
        self._tasks.spawn(self._watch_loop(resource_version), "pod watch")

    async def stop(self) -> None:
        """Stop watching and terminate every container process (SIGTERM, then SIGKILL); await them all."""
        self._stopping = True
        await self._tasks.cancel_all()
        await self.streaming.close_all()
        workers = list(self._workers.values())
        await asyncio.gather(*(w.shutdown(self.shutdown_grace_seconds) for w in workers), return_exceptions=True)
        if self._own_work_dir:
            await asyncio.to_thread(shutil.rmtree, self.work_dir, True)

    def worker(self, namespace: str, name: str) -> PodWorker | None:
        """The worker running pod ``namespace/name`` on this node, if any (the kubelet API's lookup)."""
        return self._by_name.get((namespace, name))

    def pod_ip(self, namespace: str, name: str) -> str | None:
        """The loopback address given to pod ``namespace/name`` on this node, if it runs here."""
        worker = self._by_name.get((namespace, name))
        return worker.pod_ip if worker is not None else None

    def oom_kill(self, namespace: str, name: str, container: str | None = None) -> bool:
        """Simulate the kernel OOM killer: SIGKILL the pod's running container(s) (all when ``container``
        is ``None``), reported as ``OOMKilled`` with exit code 137.  ``False`` when nothing was running."""
        worker = self._by_name.get((namespace, name))
        return worker.oom_kill(container) if worker is not None else False

    def read_log(self, namespace: str, pod: str, container: str | None, tail_lines: int | None) -> str:
        """The log reader the store calls for ``pods/log`` of pods on this node."""
        worker = self._by_name.get((namespace, pod))
        if worker is None:
            return ""
        found = worker.container_state(container)
        if found is None:
            raise BadRequest(f"container {container} is not valid for pod {pod}")
        name, state = found
        path = worker.log_path(name)
        if "waiting" in state and (path is None or not path.exists()):
            reason = state["waiting"].get("reason", ps.CONTAINER_CREATING)
            raise BadRequest(f'container "{name}" in pod "{pod}" is waiting to start: {reason}')
        return read_log(path, tail_lines) if path is not None else ""

    # ---------------------------------------------------------------- the node object

    def _node_object(self) -> Obj:
        capacity = self.ctx.allocatable
        stamp = ps.now()
        conditions = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ]
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node_name, "labels": dict(self.labels)},
            "spec": {},
            "status": {
                "capacity": dict(capacity),
                "allocatable": dict(capacity),
                "conditions": [
                    {"type": t, "status": s, "reason": r, "message": m,
                     "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
                    for t, s, r, m in conditions
                ],
                "addresses": [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": self.node_name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "osImage": platform.platform(),
                    "kernelVersion": platform.release(),
                    "kubeletVersion": KUBELET_VERSION,
                    "kubeProxyVersion": "",
                    "containerRuntimeVersion": "kernelgate-processes://0.1.0",
                    "machineID": "", "systemUUID": "", "bootID": "",
                },
            },
        }

    async def _register_node(self) -> str:
        """Create this node's Node object, or refresh labels and status of an existing one (kubelet registration);
        return the Node's uid."""
        node = self._node_object()
        try:
            await asyncio.wait_for(self.cluster.create("nodes", node), timeout=API_TIMEOUT)
        except AlreadyExists:
            await asyncio.wait_for(
                self.cluster.patch("nodes", self.node_name, {"metadata": {"labels": node["metadata"]["labels"]}}),
                timeout=API_TIMEOUT,
            )
        # The API server may drop status on create; write it through the status subresource as the kubelet does.
        registered = await asyncio.wait_for(
            self.cluster.patch("nodes", self.node_name, {"status": node["status"]}, subresource="status"),
            timeout=API_TIMEOUT,
        )
        return str(registered["metadata"].get("uid", ""))

    # ---------------------------------------------------------------- the pod watch

    async def _relist(self) -> str:
        """List every pod, reconcile with what runs here; return the list's resourceVersion."""
        listing = await asyncio.wait_for(self.cluster.list("pods", field_selector=self._pod_selector),
                                         timeout=API_TIMEOUT)
        seen = set()
        for pod in listing.get("items") or []:
            seen.add(pod["metadata"].get("uid"))
            self._handle("ADDED", pod)
        for uid, worker in list(self._workers.items()):
            if uid not in seen:
                worker.removed()
        return str(listing.get("metadata", {}).get("resourceVersion", ""))

    async def _watch_loop(self, resource_version: str) -> None:
        """Follow pod changes from ``resource_version``; resume after a closed stream, relist after 410 Gone."""
        while not self._stopping:
            try:
                stream = self.cluster.watch(
                    "pods", field_selector=self._pod_selector, resource_version=resource_version,
                    timeout_seconds=WATCH_TIMEOUT_SECONDS, allow_bookmarks=True,
                )
                try:
                    async for event in stream:
                        resource_version = event.resource_version or resource_version
                        if event.type in ("ADDED", "MODIFIED", "DELETED"):
                            self._handle(event.type, event.object)
                finally:
                    aclose = getattr(stream, "aclose", None)
                    if aclose is not None:
                        await aclose()
            except Gone:
                resource_version = await self._relist_until_done()
            except Exception as err:  # the agent must outlive any one failed stream
                log.warning("%s: pod watch failed (%r); relisting", self.node_name, err)
                await asyncio.sleep(RETRY_SECONDS)  # a fixed pause before retrying a failed API, not a poll
                resource_version = await self._relist_until_done()

    async def _relist_until_done(self) -> str:
        while True:
            try:
                return await self._relist()
            except (ClusterError, asyncio.TimeoutError) as err:
                log.warning("%s: pod list failed (%s); retrying", self.node_name, err)
                await asyncio.sleep(RETRY_SECONDS)

    def _handle(self, event_type: str, pod: Obj) -> None:
        """Route one pod change: to its worker, to the scheduler, or nowhere (another node's pod)."""
        meta = pod.get("metadata", {})
        uid = meta.get("uid", "")
        if event_type == "DELETED":
            self._scheduled.discard(uid)
            worker = self._workers.get(uid)
            if worker is not None:
                worker.removed()
            return
        node = pod.get("spec", {}).get("nodeName")
        if not node:
            if self.schedule and uid not in self._scheduled and not meta.get("deletionTimestamp"):
                self._scheduled.add(uid)
                self._tasks.spawn(self._schedule(pod), "schedule")
            return
        self._scheduled.discard(uid)
        if node != self.node_name:
            return
        worker = self._workers.get(uid)
        if worker is None:
            if self._stopping:
                return
            worker = self._start_worker(pod)
        worker.update(pod)

    def _start_worker(self, pod: Obj) -> PodWorker:
        meta, status = pod["metadata"], pod.get("status") or {}
        pod_ip = owned_ip = None
        if pod.get("spec", {}).get("hostNetwork"):
            pod_ip = HOST_IP  # a host-network pod shares the node's address
        elif status.get("phase") not in TERMINAL_POD_PHASES:
            old_ip = status.get("podIP")
            pod_ip = owned_ip = old_ip if old_ip and POD_IPS.reserve(old_ip) else POD_IPS.allocate()
        worker = PodWorker(self.ctx, pod, pod_ip)
        key = (meta["namespace"], meta["name"])
        self._workers[worker.uid] = worker
        self._by_name[key] = worker

        def forget(_: asyncio.Task[None]) -> None:
            if owned_ip is not None:
                POD_IPS.release(owned_ip)
            if self._workers.get(worker.uid) is worker:
                del self._workers[worker.uid]
            if self._by_name.get(key) is worker:
                del self._by_name[key]

        worker.task.add_done_callback(forget)
        return worker

    # ---------------------------------------------------------------- the scheduler

    async def _schedule(self, pod: Obj) -> None:
        """Bind ``pod`` here when it fits, else report it unschedulable (kube-scheduler's two outcomes)."""
        meta, spec = pod["metadata"], pod.get("spec", {})
        if spec.get("schedulerName", SCHEDULER) != SCHEDULER:
            return  # another scheduler's pod
        namespace, name = meta["namespace"], meta["name"]
        try:
            if fits_node(pod, self.labels):
                await asyncio.wait_for(self.cluster.bind_pod(name, namespace, self.node_name), timeout=API_TIMEOUT)
                await self._record(pod, None, "Normal", "Scheduled",
                                   f"Successfully assigned {namespace}/{name} to {self.node_name}", SCHEDULER)
                return
            message = unschedulable_message()
            condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                         "lastProbeTime": None, "lastTransitionTime": ps.now()}
            await asyncio.wait_for(
                self.cluster.patch("pods", name, {"status": {"conditions": [condition]}}, namespace=namespace,
                                   subresource="status"),
                timeout=API_TIMEOUT,
            )
            await self._record(pod, None, "Warning", "FailedScheduling", message, SCHEDULER)
        except (NotFound, Conflict):
            pass  # deleted meanwhile, or bound by someone else
        except (ClusterError, asyncio.TimeoutError) as err:
            log.warning("%s: could not schedule pod %s/%s: %s", self.node_name, namespace, name, err)
            self._scheduled.discard(meta.get("uid", ""))  # consider it again on its next change or relist

    # ---------------------------------------------------------------- events

    async def _record_kubelet_event(self, pod: Obj, field_path: str | None, etype: str, reason: str, message: str) -> None:
        await self._record(pod, field_path, etype, reason, message, "kubelet")

    async def _record(
        self, pod: Obj, field_path: str | None, etype: str, reason: str, message: str, component: str
    ) -> None:
        """Post an Event about ``pod`` (best effort: a failure is logged, never raised), as
        client-go's event recorder does for the kubelet and the scheduler."""
        meta = pod["metadata"]
        self._event_seq += 1
        involved = {
            "kind": "Pod", "apiVersion": "v1", "namespace": meta["namespace"], "name": meta["name"],
            "uid": meta.get("uid", ""), "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            involved["fieldPath"] = field_path
        stamp = ps.now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{time.time_ns() + self._event_seq:x}", "namespace": meta["namespace"]},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": etype,
            "source": {"component": component, **({"host": self.node_name} if component == "kubelet" else {})},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": component,
            "reportingInstance": self.node_name if component == "kubelet" else f"{SCHEDULER}-{self.node_name}",
        }
        try:
            await asyncio.wait_for(self.cluster.create("events", event, namespace=meta["namespace"]), timeout=API_TIMEOUT)
        except (ClusterError, asyncio.TimeoutError) as err:
            log.debug("%s: event %s for %s/%s not recorded: %s", self.node_name, reason, meta["namespace"], meta["name"], err)


def _capacity() -> dict[str, str]:
    """This machine's CPUs and memory as node capacity (what ``resourceFieldRef`` reads for an unset limit)."""
    memory_kib = 0
    with contextlib.suppress(ValueError, OSError, AttributeError):
        memory_kib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{memory_kib}Ki",
        "pods": "110",
        "ephemeral-storage": "10Gi",
    }


