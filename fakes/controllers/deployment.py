"""The Deployment controller: a ReplicaSet per pod template, rolled out as the strategy says.

After pkg/controller/deployment (deployment_controller.go, sync.go, rolling.go, recreate.go):
for each Deployment, the ReplicaSets it controls are the new one (whose template, without the
``pod-template-hash`` label, is the Deployment's) and the old ones.  A missing new ReplicaSet is
created as ``<deployment>-<hash>`` (:mod:`fakes.controllers.templates`).  ``RollingUpdate`` scales
the new one up and the old ones down within ``maxSurge``/``maxUnavailable``
(:mod:`fakes.controllers.rollout`), one step per sync, each step waiting for the pods of the
last to become available; ``Recreate`` scales every old one to zero and starts the new one once
their pods are gone.  Old ReplicaSets beyond ``revisionHistoryLimit`` are deleted once the
rollout is complete.  The status is written last (:mod:`fakes.controllers.deploymentstatus`).

Not done here: adopting orphaned ReplicaSets, proportional scaling of a rollout in progress
(a scaled Deployment converges through the rolling steps), ``kubectl rollout undo`` (re-applying
an earlier template rolls it out again, as its newest revision), and the rollout of a paused
Deployment (its status is kept, nothing is scaled).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

from fakes.controllers import deploymentstatus as ds
from fakes.controllers import rollout
from fakes.controllers.controller import Controller
from fakes.controllers.objects import TERMINAL_PHASES, controller_of, controller_reference, key_of, meta, owned_by
from fakes.controllers.queue import Key
from fakes.controllers.templates import (
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    REVISION,
    revision_of,
    same_template,
    selector_with_hash,
    template_hash,
    with_hash,
)
from gateway.cluster.interface import AlreadyExists, Conflict, NotFound, Obj


@dataclass
class Rollout:
    """One sync's view of a Deployment's ReplicaSets, updated with each write it makes."""

    new: Obj | None
    old: list[Obj] = field(default_factory=list)
    created: bool = False  # the new ReplicaSet was created by this sync

    @property
    def everyone(self) -> list[Obj]:
        return [*self.old, *([self.new] if self.new is not None else [])]

    def replace_old(self, rs: Obj) -> None:
        self.old = [rs if meta(o)["name"] == meta(rs)["name"] else o for o in self.old]


class DeploymentController(Controller):
    """Keeps each Deployment's ReplicaSets and status (started by the controller manager)."""

    name = "deployment-controller"

    def register(self) -> None:
        self.informers.on("deployments", lambda _type, d: self.queue.add(key_of(d)))
        self.informers.on("replicasets", self._replicaset_changed)
        self.informers.on("pods", self._pod_changed)

    def _replicaset_changed(self, _event_type: str, rs: Obj) -> None:
        ref = controller_of(rs)
        if ref is not None and ref.get("kind") == "Deployment":
            self.queue.add((meta(rs).get("namespace", ""), ref.get("name", "")))

    def _pod_changed(self, event_type: str, pod: Obj) -> None:
        """A Recreate rollout waits for the old pods to be gone: their end may let it go on."""
        if event_type != "DELETED" and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES:
            return
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        namespace = meta(pod).get("namespace", "")
        rs = self.informers.get("replicasets", namespace, ref.get("name", ""))
        owner = controller_of(rs) if rs is not None else None
        if owner is None or owner.get("kind") != "Deployment":
            return
        deployment = self.informers.get("deployments", namespace, owner.get("name", ""))
        if deployment is not None and rollout.strategy_type(deployment) == rollout.RECREATE:
            self.queue.add(key_of(deployment))

    # ---------------------------------------------------------------- reconciling

    async def sync(self, key: Key) -> None:
        namespace, _name = key
        deployment = self.informers.get("deployments", *key)
        if deployment is None:
            return
        owned = [rs for rs in self.informers.items("replicasets", namespace) if owned_by(rs, deployment)]
        state = self._split(deployment, owned)
        spec = deployment.get("spec") or {}
        if not meta(deployment).get("deletionTimestamp") and not spec.get("paused"):
            await self._sync_revision(state)
            if rollout.strategy_type(deployment) == rollout.RECREATE:
                await self._recreate(deployment, state)
            else:
                await self._rolling(deployment, state)
        await self._write_status(key, deployment, state)

    @staticmethod
    def _split(deployment: Obj, owned: list[Obj]) -> Rollout:
        """The new ReplicaSet (the oldest one with the Deployment's template) and the others."""
        template = (deployment.get("spec") or {}).get("template") or {}
        matching = sorted((rs for rs in owned if same_template((rs.get("spec") or {}).get("template") or {}, template)),
                          key=lambda rs: meta(rs).get("creationTimestamp", ""))
        new_rs = matching[0] if matching else None
        return Rollout(new_rs, [rs for rs in owned if rs is not new_rs])

    async def _rolling(self, deployment: Obj, state: Rollout) -> None:
        """One step of a rolling update (``rolloutRolling``): scale the new ReplicaSet up, else old ones down."""
        if state.new is None:
            await self._create_new(deployment, state, rollout.new_replicas(deployment, state.old, None))
            if rollout.spec_replicas(state.new or {}) > 0:
                return
        new_rs = state.new
        assert new_rs is not None
        wanted, current = rollout.spec_replicas(deployment), rollout.spec_replicas(new_rs)
        target = wanted if current > wanted else rollout.new_replicas(deployment, state.everyone, new_rs)
        if target != current:
            state.new = await self._scale(deployment, new_rs, target)
            return
        active_old = [rs for rs in state.old if rollout.spec_replicas(rs) > 0]
        steps = rollout.old_scale_down(deployment, active_old, new_rs)
        for name, count in steps.items():
            rs = next(o for o in state.old if meta(o)["name"] == name)
            state.replace_old(await self._scale(deployment, rs, count))
        if not steps and ds.complete(deployment, ds.calculate_status(deployment, state.everyone, new_rs)):
            await self._clean_up(deployment, state)

    async def _recreate(self, deployment: Obj, state: Rollout) -> None:
        """``rolloutRecreate``: old ReplicaSets to zero, wait until their pods are gone, then the new one."""
        active = [rs for rs in state.old if rollout.spec_replicas(rs) > 0]
        for rs in active:
            state.replace_old(await self._scale(deployment, rs, 0))
        if active or self._old_pods_running(deployment, state.old):
            return
        wanted = rollout.spec_replicas(deployment)
        if state.new is None:
            await self._create_new(deployment, state, wanted)
        elif rollout.spec_replicas(state.new) != wanted:
            state.new = await self._scale(deployment, state.new, wanted)
        else:
            await self._clean_up(deployment, state)

    def _old_pods_running(self, deployment: Obj, old: list[Obj]) -> bool:
        if any(rollout.status_count(rs, "replicas") for rs in old):
            return True
        namespace = meta(deployment).get("namespace")
        return any(
            (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES
            for pod in self.informers.items("pods", namespace) for rs in old if owned_by(pod, rs)
        )

    # ---------------------------------------------------------------- writes

    async def _create_new(self, deployment: Obj, state: Rollout, replicas: int) -> None:
        """Create the ReplicaSet of the Deployment's template (``getNewReplicaSet``) as ``state.new``."""
        d_meta, spec = meta(deployment), deployment.get("spec") or {}
        namespace = d_meta["namespace"]
        collisions = (deployment.get("status") or {}).get("collisionCount")
        hash_value = template_hash(spec.get("template") or {}, collisions)
        template = with_hash(spec.get("template") or {}, hash_value)
        name = f"{d_meta['name']}-{hash_value}"
        body = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                "annotations": {
                    REVISION: str(max((revision_of(rs) for rs in state.old), default=0) + 1),
                    DESIRED_REPLICAS: str(rollout.spec_replicas(deployment)),
                    MAX_REPLICAS: str(rollout.max_total(deployment)),
                },
                "ownerReferences": [controller_reference(deployment, "apps/v1", "Deployment")],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                "selector": selector_with_hash(spec.get("selector") or {}, hash_value),
                "template": template,
            },
        }
        try:
            created = await self.call(self.client.create("replicasets", body, namespace=namespace))
        except AlreadyExists:
            existing = await self.call(self.client.get("replicasets", name, namespace=namespace))
            if owned_by(existing, deployment) and same_template(existing["spec"]["template"], template):
                state.new = existing  # ours, not yet in the cache
                return
            await self._count_collision(deployment)
            raise Conflict(f"replica set {name} exists with another template") from None
        if replicas > 0:
            await self.events.record(deployment, "Normal", "ScalingReplicaSet",
                                     f"Scaled up replica set {name} from 0 to {replicas}")
        state.new, state.created = created, True

    async def _sync_revision(self, state: Rollout) -> None:
        """A template rolled back to makes its old ReplicaSet the newest revision again (``getNewReplicaSet``)."""
        if state.new is None:
            return
        newest = max((revision_of(rs) for rs in state.old), default=0)
        if revision_of(state.new) > newest:
            return
        body = copy.deepcopy(state.new)
        body["metadata"].setdefault("annotations", {})[REVISION] = str(newest + 1)
        state.new = await self.call(self.client.replace("replicasets", meta(body)["name"], body,
                                                        namespace=meta(body)["namespace"]))

    async def _count_collision(self, deployment: Obj) -> None:
        """Another object holds the name: a new ``collisionCount`` gives the next try another hash."""
        status = copy.deepcopy(deployment.get("status") or {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self.call(self.client.replace("deployments", meta(deployment)["name"], {**deployment, "status": status},
                                            namespace=meta(deployment)["namespace"], subresource="status"))

    async def _scale(self, deployment: Obj, rs: Obj, replicas: int) -> Obj:
        """Set ``rs``'s replicas (an update with its resourceVersion: a stale cache gets a Conflict)."""
        before = rollout.spec_replicas(rs)
        body = copy.deepcopy(rs)
        body["spec"]["replicas"] = replicas
        annotations = body["metadata"].setdefault("annotations", {})
        annotations[DESIRED_REPLICAS] = str(rollout.spec_replicas(deployment))
        annotations[MAX_REPLICAS] = str(rollout.max_total(deployment))
        scaled = await self.call(self.client.replace("replicasets", meta(rs)["name"], body,
                                                     namespace=meta(rs)["namespace"]))
        direction = "up" if replicas > before else "down"
        await self.events.record(deployment, "Normal", "ScalingReplicaSet",
                                 f"Scaled {direction} replica set {meta(rs)['name']} from {before} to {replicas}")
        return scaled

    async def _clean_up(self, deployment: Obj, state: Rollout) -> None:
        """Delete the oldest empty old ReplicaSets beyond ``revisionHistoryLimit`` (``cleanupDeployment``)."""
        limit = (deployment.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        empty = sorted((rs for rs in state.old if rollout.spec_replicas(rs) == 0 and not rollout.status_count(rs, "replicas")
                        and not meta(rs).get("deletionTimestamp")), key=revision_of)
        doomed = empty[: max(0, len(empty) - int(limit))]
        for rs in doomed:
            try:
                await self.call(self.client.delete("replicasets", meta(rs)["name"], namespace=meta(rs)["namespace"]))
            except NotFound:
                pass
        state.old = [rs for rs in state.old if rs not in doomed]

    async def _write_status(self, key: Key, deployment: Obj, state: Rollout) -> None:
        new_rs = state.new
        status = ds.calculate_status(deployment, state.everyone, new_rs)
        if new_rs is not None and state.created:
            ds.set_condition(status, ds.PROGRESSING, "True", ds.NEW_RS_CREATED,
                             f'Created new replica set "{meta(new_rs)["name"]}"')
        elif new_rs is not None and ds.condition(status, ds.PROGRESSING) is None:
            ds.set_condition(status, ds.PROGRESSING, "True", ds.FOUND_NEW_RS, f'Found new replica set "{meta(new_rs)["name"]}"')
        recheck = ds.progress(deployment, status, new_rs, time.time())
        if recheck is not None:
            self.queue.add_after(key, recheck + 1)
        if status == (deployment.get("status") or {}):
            return
        await self.call(self.client.replace("deployments", key[1], {**deployment, "status": status},
                                            namespace=key[0], subresource="status"))

