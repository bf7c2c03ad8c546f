"""The ReplicaSet controller: as many running pods as a ReplicaSet asks for, and its status.

After pkg/controller/replicaset/replica_set.go: the pods a ReplicaSet controls (its
``ownerReferences``) that are active (not terminal, not being deleted) are counted; missing
ones are created from the template (``generateName`` ``<replicaset>-``), surplus ones deleted
in the order ``getPodsToDelete`` picks them (unscheduled, pending, unready, recently ready,
restarted, young first).  So a deleted or failed pod is replaced.  Writes wait to be seen in
the pod cache before the next count (:mod:`fakes.controllers.expectations`).  The status
counts replicas, fully labelled, ready and available ones (ready for ``minReadySeconds``).
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

from fakes.controllers.controller import Controller
from fakes.controllers.expectations import Expectations
from fakes.controllers.informers import SharedInformers
from fakes.controllers.objects import (
    available_in,
    controller_of,
    controller_reference,
    key_of,
    meta,
    owned_by,
    parse_time,
    pod_active,
    pod_ready,
    pod_scheduled,
    ready_condition,
)
from fakes.controllers.queue import Key
from gateway.cluster.interface import Cluster, NotFound, Obj

BURST_REPLICAS = 500
"""At most this many pods are created or deleted in one sync (the controller's burstReplicas)."""

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


class ReplicaSetController(Controller):
    """Keeps each ReplicaSet's pods and status (started by the controller manager)."""

    name = "replicaset-controller"

    def __init__(self, informers: SharedInformers, client: Cluster) -> None:
        super().__init__(informers, client)
        self.expectations = Expectations()

    def register(self) -> None:
        self.informers.on("replicasets", self._replicaset_changed)
        self.informers.on("pods", self._pod_changed)

    # ---------------------------------------------------------------- event handlers

    def _replicaset_changed(self, event_type: str, rs: Obj) -> None:
        key = key_of(rs)
        if event_type == "DELETED":
            self.expectations.forget(key)
        self.queue.add(key)

    def _pod_changed(self, event_type: str, pod: Obj) -> None:
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        key = (meta(pod).get("namespace", ""), ref.get("name", ""))
        rs = self.informers.get("replicasets", key[0], key[1])
        if rs is None or meta(rs).get("uid") != ref.get("uid"):
            return
        uid = meta(pod).get("uid", "")
        if event_type == "DELETED" or meta(pod).get("deletionTimestamp"):
            self.expectations.deletion_observed(key, uid)
        elif event_type == "ADDED":
            self.expectations.creation_observed(key)
        self.queue.add(key)

    # ---------------------------------------------------------------- reconciling

    async def sync(self, key: Key) -> None:
        namespace, name = key
        rs = self.informers.get("replicasets", namespace, name)
        if rs is None:
            self.expectations.forget(key)
            return
        pods = [pod for pod in self.informers.items("pods", namespace) if owned_by(pod, rs)]
        active = [pod for pod in pods if pod_active(pod)]
        if self.expectations.satisfied(key) and not meta(rs).get("deletionTimestamp"):
            await self._manage(key, rs, active)
        await self._write_status(key, rs, active)

    async def _manage(self, key: Key, rs: Obj, active: list[Obj]) -> None:
        """Create or delete pods until ``len(active)`` is the wanted number (``manageReplicas``)."""
        diff = len(active) - replicas_of(rs)
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            self.expectations.expect(key, creations=count)
            for done in range(count):
                try:
                    pod = await self.call(self.client.create("pods", _pod_for(rs), namespace=key[0]))
                except BaseException:
                    for _ in range(count - done):  # those will not be seen: stop waiting for them
                        self.expectations.creation_observed(key)
                    raise
                await self.events.record(rs, "Normal", "SuccessfulCreate", f"Created pod: {meta(pod)['name']}")
        elif diff > 0:
            victims = sorted(active, key=_deletion_rank)[: min(diff, BURST_REPLICAS)]
            self.expectations.expect(key, deletions=[meta(pod).get("uid", "") for pod in victims])
            for index, pod in enumerate(victims):
                try:
                    await self.call(self.client.delete("pods", meta(pod)["name"], namespace=key[0]))
                except NotFound:
                    self.expectations.deletion_observed(key, meta(pod).get("uid", ""))
                    continue
                except BaseException:
                    for left in victims[index:]:
                        self.expectations.deletion_observed(key, meta(left).get("uid", ""))
                    raise
                await self.events.record(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {meta(pod)['name']}")

    async def _write_status(self, key: Key, rs: Obj, active: list[Obj]) -> None:
        status, recheck = replicaset_status(rs, active, time.time())
        if recheck is not None:  # a ready pod becomes available after minReadySeconds
            self.queue.add_after(key, recheck)
        if status == (rs.get("status") or {}):
            return
        body = {**rs, "status": status}
        await self.call(self.client.replace("replicasets", key[1], body, namespace=key[0], subresource="status"))


def replicas_of(obj: Obj) -> int:
    """``spec.replicas`` (1 when unset, as the API defaults it)."""
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def replicaset_status(rs: Obj, active: list[Obj], at: float) -> tuple[dict[str, Any], float | None]:
    """The status of ``rs`` whose active pods are ``active``, and when to look again (minReadySeconds).

    Fields the API omits when zero are left out, as the controller's writes leave them.
    """
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    fully_labeled = sum(all((meta(p).get("labels") or {}).get(k) == v for k, v in template_labels.items())
                        for p in active)
    ready = sum(pod_ready(p) for p in active)
    available, recheck = 0, None
    for pod in active:
        wait = available_in(pod, min_ready, at)
        if wait == 0:
            available += 1
        elif wait is not None:
            recheck = wait if recheck is None else min(recheck, wait)
    status: dict[str, Any] = {"replicas": len(active)}
    for field, value in (("fullyLabeledReplicas", fully_labeled), ("readyReplicas", ready),
                         ("availableReplicas", available), ("observedGeneration", meta(rs).get("generation"))):
        if value:
            status[field] = value
    old_conditions = (rs.get("status") or {}).get("conditions")
    if old_conditions:
        status["conditions"] = old_conditions
    return status, recheck


def _pod_for(rs: Obj) -> Obj:
    """A new pod of ``rs``: its template, owned by it (``GetPodFromTemplate``)."""
    template = (rs.get("spec") or {}).get("template") or {}
    template_meta = template.get("metadata") or {}
    pod_meta: dict[str, Any] = {
        "generateName": f"{meta(rs)['name']}-",
        "namespace": meta(rs)["namespace"],
        "labels": dict(template_meta.get("labels") or {}),
        "ownerReferences": [controller_reference(rs, "apps/v1", "ReplicaSet")],
    }
    if template_meta.get("annotations"):
        pod_meta["annotations"] = dict(template_meta["annotations"])
    if template_meta.get("finalizers"):
        pod_meta["finalizers"] = list(template_meta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": copy.deepcopy(template.get("spec") or {})}


def _deletion_rank(pod: Obj) -> tuple[Any, ...]:
    """Sort key: the pod to delete first sorts first (controller_utils.go ``ActivePods.Less``)."""
    status = pod.get("status") or {}
    ready = pod_ready(pod)
    # An unknown time counts as the most recent one: such pods go first.
    ready_since = (parse_time((ready_condition(pod) or {}).get("lastTransitionTime")) or math.inf) if ready else 0.0
    restarts = max((int(cs.get("restartCount") or 0) for cs in status.get("containerStatuses") or []), default=0)
    created = parse_time(meta(pod).get("creationTimestamp")) or math.inf
    return (
        pod_scheduled(pod),
        _PHASE_RANK.get(status.get("phase", ""), 3),
        ready,
        -ready_since,
        -restarts,
        -created,
    )
