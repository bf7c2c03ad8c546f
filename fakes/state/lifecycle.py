"""Deletion in the simulated cluster: preconditions, graceful pods, finalizers, garbage collection, namespaces.

:class:`Lifecycle` is a mixin of ``fakes.state.store.Store``; it holds the delete
path and the controllers a real cluster runs in kube-controller-manager.  The
controllers run synchronously inside the store, right after the write that
gives them work (:meth:`Lifecycle._settle`), so every outcome is
deterministic: only what an outside actor must do stays pending (a kubelet
finishing a graceful pod deletion, a client removing its finalizer).

Sources followed:

* ``k8s.io/apiserver/pkg/registry/rest/delete.go`` ``BeforeDelete`` and
  ``registry/generic/registry/store.go`` (graceful deletion, finalizers,
  ``deletionGracePeriodSeconds``; an object whose finalizers are emptied after
  its deletion was requested is removed);
* ``pkg/registry/core/pod/strategy.go`` ``CheckGracefulDelete`` (unbound or
  terminal pods go at once; otherwise the request's grace period, else
  ``spec.terminationGracePeriodSeconds``);
* ``pkg/controller/garbagecollector`` (Background: dependents whose owners
  are all gone are deleted, dangling references to a gone owner are removed;
  Foreground: the owner carries the ``foregroundDeletion`` finalizer until its
  ``blockOwnerDeletion`` dependents are gone; Orphan: dependents lose the
  reference);
* ``pkg/registry/core/namespace/storage/storage.go`` and
  ``pkg/controller/namespace`` (Terminating, contents deleted, the
  ``kubernetes`` finalizer removed when empty, then the namespace goes).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fakes.state.objects import Key, clone
from gateway.cluster.interface import Conflict, Propagation
from gateway.cluster.resources import RESOURCES, TERMINAL_POD_PHASES, ResourceType

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
NAMESPACE_FINALIZER = "kubernetes"


@dataclass(frozen=True)
class Preconditions:
    """A DELETE's ``DeleteOptions.preconditions``: the uid and/or resourceVersion the object must have."""

    uid: str | None = None
    resource_version: str | None = None

    def check(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Raise the 409 a real server answers when ``obj`` (stored, about to be deleted) does not match.

        ``rest.BeforeDelete`` (k8s.io/apiserver/pkg/registry/rest/delete.go) checks them before anything
        else, naming the kind (``schema.GroupResource{Group, Resource: Kind}``); a namespace's own
        ``REST.Delete`` (pkg/registry/core/namespace/storage/storage.go) checks them with other words.
        """
        meta = obj["metadata"]
        name, uid, version = meta["name"], meta["uid"], meta["resourceVersion"]
        if rt.plural == "namespaces":
            if self.uid is not None and self.uid != uid:
                why = f"Precondition failed: UID in precondition: {self.uid}, UID in object meta: {uid}"
            elif self.resource_version is not None and self.resource_version != version:
                why = (f"Precondition failed: ResourceVersion in precondition: {self.resource_version}, "
                       f"ResourceVersion in object meta: {version}")
            else:
                return
            raise Conflict(f'Operation cannot be fulfilled on namespaces "{name}": {why}', kind="namespaces", name=name)
        if self.uid is not None and self.uid != uid:
            why = (f"the UID in the precondition ({self.uid}) does not match the UID in record ({uid}). "
                   "The object might have been deleted and then recreated")
        elif self.resource_version is not None and self.resource_version != version:
            why = (f"the ResourceVersion in the precondition ({self.resource_version}) does not match the "
                   f"ResourceVersion in record ({version}). The object might have been modified")
        else:
            return
        qualified = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
        raise Conflict(f'Operation cannot be fulfilled on {qualified} "{name}": {why}', kind=rt.kind, name=name,
                       group=rt.group)


class Lifecycle:
    """Deletion and the controllers behind it (mixed into ``Store``; uses its storage primitives)."""

    # Provided by Store:
    _objects: dict[str, dict[tuple[str, str], dict[str, Any]]]
    _dependents: dict[str, set[Key]]
    _by_uid: dict[str, Key]
    _pending_owners: list[str]
    _pending_dependents: list[Key]
    _pending_namespaces: set[str]
    _settling: bool
    _namespace_counts: dict[str, int]

    def _put(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        raise NotImplementedError

    def _remove(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    _clock: Callable[[], float]
    _keep_namespace_defaults: Callable[[], None]  # fakes.state.namespacedefaults.NamespaceDefaults

    def _now(self) -> str:
        raise NotImplementedError

    def _in_seconds(self, seconds: int) -> str:
        raise NotImplementedError

    def create(self, rt: ResourceType, obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        raise NotImplementedError

    # ---------------------------------------------------------------- the delete path

    def _delete_object(
        self, rt: ResourceType, obj: dict[str, Any], grace: int | None, policy: Propagation | None
    ) -> tuple[dict[str, Any], bool]:
        """Start deleting stored ``obj``; return its state afterwards and whether it is gone.

        Called by ``Store.delete`` and by the controllers below for dependents
        and namespace contents.  Does not settle; the caller does.  As the
        generic registry's ``Store.Delete``: ``BeforeDelete`` first (pods, the one
        graceful kind here, are always written with their deletion mark, so
        watchers see MODIFIED before DELETED even for a pod that goes at once),
        then finalizers, then removal when nothing holds the object.
        """
        if rt.plural == "namespaces":
            return self._delete_namespace(obj), False
        meta = obj["metadata"]
        uid = meta["uid"]
        policy = policy or Propagation.BACKGROUND
        new = clone(obj)
        new_meta = new["metadata"]
        graceful = False
        if rt.plural == "pods":
            marked = self._mark_pod_for_deletion(obj, new_meta, grace)
            if marked is None:
                return obj, False  # a deletion already pending with no shorter grace: answered as it stands
            graceful = marked
        finalizers = list(meta.get("finalizers") or [])
        if policy is Propagation.ORPHAN:
            self._orphan_dependents(uid)
        elif policy is Propagation.FOREGROUND and self._dependents.get(uid):
            if FOREGROUND not in finalizers:
                finalizers.append(FOREGROUND)
        if not graceful and not finalizers:
            return self._remove(rt, obj), True
        new_meta["finalizers"] = finalizers
        if not finalizers:
            new_meta.pop("finalizers")
        if not graceful:
            # store.go markAsDeleting: only finalizers hold the object; marked now, no grace left.
            if "deletionTimestamp" not in new_meta and new_meta.get("generation", 0) > 0:
                new_meta["generation"] += 1
            if "deletionTimestamp" not in new_meta or new_meta["deletionTimestamp"] > self._now():
                new_meta["deletionTimestamp"] = self._now()
            new_meta["deletionGracePeriodSeconds"] = 0
        if new != obj:
            obj = self._put(rt, new, obj)
        if graceful and not finalizers and new_meta["deletionGracePeriodSeconds"] == 0:
            return self._remove(rt, obj), True  # updateForGracefulDeletionAndFinalizers: deleteImmediately
        if FOREGROUND in finalizers and FOREGROUND not in (meta.get("finalizers") or []):
            # Only when the owner turns foreground: ownership cycles must not recurse forever.
            self._delete_dependents(uid)
            # Dependents that do not block (or none left) let the owner go now.
            self._release_foreground_owners([{"uid": uid}])
            if uid not in self._by_uid:
                return obj, True
            key = self._by_uid[uid]
            return self._objects[key[0]][(key[1], key[2])], False
        return obj, False

    def _mark_pod_for_deletion(self, pod: dict[str, Any], new_meta: dict[str, Any], grace: int | None) -> bool | None:
        """``rest.BeforeDelete`` for a pod: set its deletion mark in ``new_meta``.

        Returns ``True`` when the mark was set or shortened (graceful), ``False`` when
        the pod carries a mark of no grace already (only finalizers can hold it),
        ``None`` when a deletion is pending and this request shortens nothing.
        """
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            current = meta.get("deletionGracePeriodSeconds")
            if not current:
                return False
            if grace is None or grace >= current:
                return None
            # A later request may shorten the grace period, never lengthen it; the mark moves back by the
            # difference, to now at the earliest (and then a grace left over is 1 second).
            when = _epoch(meta["deletionTimestamp"]) - current + grace
            period = grace
            if when < self._clock():
                when, period = self._clock(), (1 if grace else 0)
            new_meta["deletionTimestamp"] = _timestamp(when)
            new_meta["deletionGracePeriodSeconds"] = period
            return True
        period = self._pod_grace_period(pod, grace)
        new_meta["deletionTimestamp"] = self._in_seconds(period)
        new_meta["deletionGracePeriodSeconds"] = period
        if new_meta.get("generation", 0) > 0:
            new_meta["generation"] += 1
        return True

    @staticmethod
    def _pod_grace_period(pod: dict[str, Any], grace: int | None) -> int:
        """``CheckGracefulDelete`` of pkg/registry/core/pod/strategy.go: the grace period a pod deletion waits.

        Unbound or terminal pods get 0 (they go at once); otherwise the request's
        grace period, else ``spec.terminationGracePeriodSeconds``.  Pods bound to a
        node wait for its kubelet, which stops the containers and deletes them with grace 0.
        """
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in TERMINAL_POD_PHASES:
            return 0
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds")
        return max(int(grace or 0), 0)

    def _delete_namespace(self, ns: dict[str, Any]) -> dict[str, Any]:
        meta = ns["metadata"]
        if meta.get("deletionTimestamp"):
            # pkg/registry/core/namespace/storage/storage.go REST.Delete: a namespace already terminating is
            # answered as it stands (200) while spec.finalizers hold it; it goes once they are done, which
            # here is when its last object is gone.
            return ns
        new = clone(ns)
        new["metadata"]["deletionTimestamp"] = self._now()  # and no deletionGracePeriodSeconds, as REST.Delete
        new.setdefault("status", {})["phase"] = "Terminating"
        ns = self._put(RESOURCES["namespaces"], new, ns)
        self._pending_namespaces.add(meta["name"])
        self._empty_namespace(meta["name"])
        return ns

    # ---------------------------------------------------------------- garbage collector

    def _orphan_dependents(self, owner_uid: str) -> None:
        for key in sorted(self._dependents.get(owner_uid, ())):
            self._drop_owner_refs(key, {owner_uid})

    def _drop_owner_refs(self, key: Key, uids: set[str]) -> None:
        plural, ns, name = key
        rt = RESOURCES[plural]
        obj = self._objects[plural].get((ns, name))
        if obj is None:
            return
        new = clone(obj)
        refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") not in uids]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        self._put(rt, new, obj)

    def _delete_dependents(self, owner_uid: str) -> None:
        """Foreground: delete every dependent, themselves in the foreground, so the owner goes last."""
        for key in sorted(self._dependents.get(owner_uid, ())):
            plural, ns, name = key
            dep = self._objects[plural].get((ns, name))
            if dep is not None:
                self._delete_object(RESOURCES[plural], dep, None, Propagation.FOREGROUND)

    def _collect_orphans_of(self, owner_uid: str) -> None:
        """An owner is gone: look at each of its dependents."""
        for key in sorted(self._dependents.get(owner_uid, ())):
            self._collect_if_orphaned(key)

    def _collect_if_orphaned(self, key: Key) -> None:
        """Delete a dependent none of whose owners exist; drop the references to gone owners from one
        that still has a live owner (garbagecollector.go attemptToDeleteItem: dangling vs solid owners)."""
        plural, ns, name = key
        dep = self._objects[plural].get((ns, name))
        if dep is None:
            return
        uids = {r.get("uid") for r in dep["metadata"].get("ownerReferences") or []}
        dangling = {uid for uid in uids if uid not in self._by_uid}
        if not dangling:
            return
        if dangling != uids:
            self._drop_owner_refs(key, dangling)
        else:
            self._delete_object(RESOURCES[plural], dep, None, Propagation.BACKGROUND)

    def _release_foreground_owners(self, refs: list[dict[str, Any]]) -> None:
        """A dependent is gone: an owner deleted in the foreground goes once no blocking dependent is left."""
        for ref in refs:
            key = self._by_uid.get(ref.get("uid", ""))
            if key is None:
                continue
            plural, ns, name = key
            owner = self._objects[plural][(ns, name)]
            finalizers = owner["metadata"].get("finalizers") or []
            if FOREGROUND not in finalizers or self._has_blocking_dependents(owner["metadata"]["uid"]):
                continue
            new = clone(owner)
            rest = [f for f in finalizers if f != FOREGROUND]
            if rest:
                new["metadata"]["finalizers"] = rest
            else:
                new["metadata"].pop("finalizers")
            self._finish_update(RESOURCES[plural], new, owner)

    def _has_blocking_dependents(self, owner_uid: str) -> bool:
        for plural, ns, name in self._dependents.get(owner_uid, ()):
            dep = self._objects[plural].get((ns, name))
            if dep is None:
                continue
            for ref in dep["metadata"].get("ownerReferences") or []:
                if ref.get("uid") == owner_uid and ref.get("blockOwnerDeletion"):
                    return True
        return False

    def _finish_update(self, rt: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        """Store an update; an object marked for deletion whose last finalizer is gone (and whose grace
        period is over) is removed instead, as the generic registry's Update does."""
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not meta.get("deletionGracePeriodSeconds"):
            if rt.plural == "namespaces":
                # The namespace controller finalizes (MODIFIED), then deletes the namespace (DELETED).
                if not (new.get("spec") or {}).get("finalizers"):
                    return self._remove(rt, self._put(rt, new, old))
            else:
                # store.go Update with emptied finalizers: deleted in place of the update (one DELETED).
                return self._remove(rt, old)
        return self._put(rt, new, old)

    # ---------------------------------------------------------------- namespace controller

    def _empty_namespace(self, namespace: str) -> None:
        for plural, objects in list(self._objects.items()):
            rt = RESOURCES[plural]
            if not rt.namespaced:
                continue
            for key in sorted(k for k in objects if k[0] == namespace):
                current = objects.get(key)
                if current is not None:
                    # Deleting again what is already being deleted changes nothing.
                    self._delete_object(rt, current, None, Propagation.BACKGROUND)

    def _namespace_is_empty(self, namespace: str) -> bool:
        return not self._namespace_counts.get(namespace)

    def _finalize_namespace(self, namespace: str) -> None:
        ns = self._objects["namespaces"].get(("", namespace))
        if ns is None or not ns["metadata"].get("deletionTimestamp") or not self._namespace_is_empty(namespace):
            return
        self._pending_namespaces.discard(namespace)
        new = clone(ns)
        finalizers = [f for f in (new.get("spec") or {}).get("finalizers") or [] if f != NAMESPACE_FINALIZER]
        new.setdefault("spec", {})["finalizers"] = finalizers
        if not finalizers:
            new["spec"].pop("finalizers")
        self._finish_update(RESOURCES["namespaces"], new, ns)

    # ---------------------------------------------------------------- settling

    def _settle(self) -> None:
        """Run the controllers until nothing is left to do; called after every write."""
        if self._settling:
            return
        self._settling = True
        try:
            while True:
                if self._pending_owners:
                    self._collect_orphans_of(self._pending_owners.pop(0))
                    continue
                if self._pending_dependents:
                    self._collect_if_orphaned(self._pending_dependents.pop(0))
                    continue
                for namespace in sorted(self._pending_namespaces):
                    self._finalize_namespace(namespace)
                self._keep_namespace_defaults()
                if not self._pending_owners and not self._pending_dependents:
                    break
        finally:
            self._settling = False


def _epoch(timestamp: str) -> float:
    return float(calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ")))


def _timestamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
