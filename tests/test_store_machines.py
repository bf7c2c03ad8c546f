"""State machines over the simulated cluster's store.

1. Namespace cascade and garbage collection never leave an object behind:
   random namespaces, objects in them (some owning others, some held by
   finalizers, some pods bound to a node), deletes with random propagation.
2. A watch replays exactly the writes after its version: random writes, then
   watches from random past versions (with and without label selectors)
   deliver exactly the later changes in order, and a version older than the
   retained window is 410 Gone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fakes.state.store import Store
from fakes.state.watching import Watch
from gateway.cluster.interface import (
    AlreadyExists,
    ClusterError,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    Obj,
    PatchType,
    Propagation,
    WatchEvent,
)
from gateway.cluster.resources import RESOURCES
from tests import depth

NAMESPACES = ("alpha", "beta", "gamma")
NAMESPACED = ("configmaps", "secrets", "pods", "serviceaccounts")
OBJECT_NAMES = ("a", "b", "c", "d")
FINALIZER = "example.com/hold"
NODE = "machine-node"

MACHINE_SETTINGS = settings(max_examples=depth.examples(50), stateful_step_count=depth.steps(30), deadline=None)


def _body(resource: str, name: str) -> dict[str, Any]:
    if resource == "pods":
        return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    return {"metadata": {"name": name}}


class NamespaceCascade(RuleBasedStateMachine):
    """Deletes of namespaces and owners settle into a state with nothing orphaned."""

    @invariant()
    def counted(self) -> None:
        depth.count_step(type(self).__name__)

    def __init__(self) -> None:
        super().__init__()
        self.store = Store()
        self.ns_rt = RESOURCES["namespaces"]
        self.uids_seen: list[dict[str, str]] = []  # owner references to objects that existed at some point

    # ---------------------------------------------------------------- helpers

    def _all(self) -> list[tuple[str, dict[str, Any]]]:
        return [(r, o) for r in NAMESPACED for o in self.store.objects(RESOURCES[r])]

    def _find(self, resource: str, ns: str, name: str) -> dict[str, Any] | None:
        try:
            return self.store.get(RESOURCES[resource], ns, name)
        except NotFound:
            return None

    # ---------------------------------------------------------------- rules

    @rule(ns=st.sampled_from(NAMESPACES))
    def create_namespace(self, ns: str) -> None:
        try:
            self.store.create(self.ns_rt, {"metadata": {"name": ns}}, None)
        except AlreadyExists:
            assert self._find_ns(ns) is not None

    def _find_ns(self, ns: str) -> dict[str, Any] | None:
        try:
            return self.store.get(self.ns_rt, None, ns)
        except NotFound:
            return None

    @rule(ns=st.sampled_from(NAMESPACES), resource=st.sampled_from(NAMESPACED), name=st.sampled_from(OBJECT_NAMES),
          owners=st.lists(st.integers(min_value=0, max_value=40), max_size=2), block=st.booleans(),
          finalizer=st.booleans())
    def create_object(self, ns: str, resource: str, name: str, owners: list[int], block: bool,
                      finalizer: bool) -> None:
        body = _body(resource, name)
        refs = [dict(self.uids_seen[i % len(self.uids_seen)], blockOwnerDeletion=block)
                for i in owners if self.uids_seen]
        if refs:
            body["metadata"]["ownerReferences"] = list({r["uid"]: r for r in refs}.values())
        if finalizer:
            body["metadata"]["finalizers"] = [FINALIZER]
        namespace = self._find_ns(ns)
        try:
            created = self.store.create(RESOURCES[resource], body, ns)
        except NotFound:
            assert namespace is None
            return
        except Forbidden:
            assert namespace is not None and namespace["metadata"].get("deletionTimestamp")
            return
        except AlreadyExists:
            return
        assert namespace is not None and not namespace["metadata"].get("deletionTimestamp")
        meta = created["metadata"]
        self.uids_seen.append({"apiVersion": "v1", "kind": RESOURCES[resource].kind, "name": meta["name"],
                               "uid": meta["uid"]})

    @rule(ns=st.sampled_from(NAMESPACES), name=st.sampled_from(OBJECT_NAMES))
    def bind_pod(self, ns: str, name: str) -> None:
        try:
            self.store.bind_pod(ns, name, NODE)
        except (NotFound, Conflict):
            pass

    @rule(ns=st.sampled_from(NAMESPACES), resource=st.sampled_from(NAMESPACED), name=st.sampled_from(OBJECT_NAMES),
          policy=st.sampled_from([None, *Propagation]), grace=st.sampled_from([None, 0, 30]))
    def delete_object(self, ns: str, resource: str, name: str, policy: Propagation | None, grace: int | None) -> None:
        try:
            self.store.delete(RESOURCES[resource], ns, name, grace, policy)
        except NotFound:
            assert self._find(resource, ns, name) is None

    @rule(ns=st.sampled_from(NAMESPACES), resource=st.sampled_from(NAMESPACED), name=st.sampled_from(OBJECT_NAMES))
    def remove_finalizers(self, ns: str, resource: str, name: str) -> None:
        obj = self._find(resource, ns, name)
        try:
            self.store.patch(RESOURCES[resource], ns, name, [{"op": "remove", "path": "/metadata/finalizers"}],
                             PatchType.JSON)
        except ClusterError:
            # Nothing to remove: the object or its finalizers are missing (422 from the JSON patch).
            assert obj is None or not obj["metadata"].get("finalizers")

    @rule()
    def kubelet_finishes_graceful_deletions(self) -> None:
        for _resource, pod in [(r, o) for r, o in self._all() if r == "pods"]:
            if pod["metadata"].get("deletionTimestamp") and pod["metadata"].get("deletionGracePeriodSeconds"):
                self.store.delete(RESOURCES["pods"], pod["metadata"]["namespace"], pod["metadata"]["name"], 0)

    @rule(ns=st.sampled_from(NAMESPACES))
    def delete_namespace(self, ns: str) -> None:
        try:
            self.store.delete(self.ns_rt, None, ns)
        except NotFound:
            assert self._find_ns(ns) is None
        except Conflict:
            namespace = self._find_ns(ns)
            assert namespace is not None and namespace["metadata"].get("deletionTimestamp")

    # ---------------------------------------------------------------- invariants

    @invariant()
    def settled_state_is_consistent(self) -> None:
        """Checked after every step, on one snapshot of the store."""
        namespaces = self.store.objects(self.ns_rt)
        objects = self._all()
        self.nothing_lives_in_a_missing_namespace(namespaces, objects)
        self.terminating_namespaces_hold_only_what_is_being_deleted(namespaces, objects)
        self.no_dependent_outlives_its_owners(objects)
        self.only_finalizers_or_a_grace_period_hold_a_deleted_object(objects)
        self.foreground_owners_wait_only_for_blocking_dependents(objects)

    @staticmethod
    def nothing_lives_in_a_missing_namespace(namespaces: list[Obj], objects: list[tuple[str, Obj]]) -> None:
        existing = {n["metadata"]["name"] for n in namespaces}
        for resource, obj in objects:
            assert obj["metadata"]["namespace"] in existing, (resource, obj["metadata"])

    @staticmethod
    def terminating_namespaces_hold_only_what_is_being_deleted(namespaces: list[Obj],
                                                               objects: list[tuple[str, Obj]]) -> None:
        for namespace in namespaces:
            if not namespace["metadata"].get("deletionTimestamp"):
                assert namespace["status"]["phase"] == "Active"
                continue
            assert namespace["status"]["phase"] == "Terminating"
            contents = [o for _r, o in objects if o["metadata"]["namespace"] == namespace["metadata"]["name"]]
            assert contents, "an empty terminating namespace must be gone"
            assert all(o["metadata"].get("deletionTimestamp") for o in contents)

    @staticmethod
    def no_dependent_outlives_its_owners(objects: list[tuple[str, Obj]]) -> None:
        alive = {o["metadata"]["uid"] for _r, o in objects}
        for _resource, obj in objects:
            refs = obj["metadata"].get("ownerReferences") or []
            if refs and not any(r["uid"] in alive for r in refs):
                assert obj["metadata"].get("deletionTimestamp"), obj["metadata"]
            # References to gone owners are dropped from dependents that still have a live owner.
            if any(r["uid"] in alive for r in refs):
                assert all(r["uid"] in alive for r in refs), obj["metadata"]

    @staticmethod
    def only_finalizers_or_a_grace_period_hold_a_deleted_object(objects: list[tuple[str, Obj]]) -> None:
        for resource, obj in objects:
            meta = obj["metadata"]
            if not meta.get("deletionTimestamp"):
                continue
            graceful = resource == "pods" and meta.get("deletionGracePeriodSeconds")
            assert meta.get("finalizers") or graceful, meta

    @staticmethod
    def foreground_owners_wait_only_for_blocking_dependents(objects: list[tuple[str, Obj]]) -> None:
        for _resource, owner in objects:
            if "foregroundDeletion" not in (owner["metadata"].get("finalizers") or []):
                continue
            uid = owner["metadata"]["uid"]
            assert any(r["uid"] == uid and r.get("blockOwnerDeletion")
                       for _r, o in objects for r in o["metadata"].get("ownerReferences") or [])


TestNamespaceCascade = NamespaceCascade.TestCase
TestNamespaceCascade.settings = MACHINE_SETTINGS


# ---------------------------------------------------------------- watch replay

WINDOW = 6
SELECTORS = (None, "app=a", "app!=a", "app")
_CM = RESOURCES["configmaps"]


def _labels_match(selector: str | None, labels: dict[str, str]) -> bool:
    """A reference reading of the few selectors the machine uses."""
    if selector is None:
        return True
    if selector == "app":
        return "app" in labels
    if selector.startswith("app!="):
        return labels.get("app") != selector[5:]
    return labels.get("app") == selector[4:]


class WatchReplay(RuleBasedStateMachine):
    """Every watch sees exactly the changes after its version, as a model of the writes predicts."""

    @invariant()
    def counted(self) -> None:
        depth.count_step(type(self).__name__)

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store = Store(watch_window=WINDOW)
        # The model: every change to config maps, (version, type, state before, state after).
        self.history: list[tuple[int, str, dict[str, Any] | None, dict[str, Any] | None]] = []
        self.state: dict[str, dict[str, Any]] = {}
        self.open: list[tuple[Watch, str | None, int, list[WatchEvent]]] = []

    def teardown(self) -> None:
        for watch, _selector, _since, _seen in self.open:
            watch.close()
        self.loop.close()

    def _record(self, kind: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        self.history.append((int(self.store.resource_version), kind, before, after))

    @rule(name=st.sampled_from(OBJECT_NAMES), app=st.sampled_from([None, "a", "b"]))
    def create(self, name: str, app: str | None) -> None:
        labels = {"app": app} if app else {}
        try:
            created = self.store.create(_CM, {"metadata": {"name": name, "labels": labels}}, "default")
        except AlreadyExists:
            assert name in self.state
            return
        self.state[name] = created
        self._record("ADDED", None, created)

    @rule(name=st.sampled_from(OBJECT_NAMES), app=st.sampled_from([None, "a", "b"]), value=st.integers(0, 3))
    def update(self, name: str, app: str | None, value: int) -> None:
        try:
            updated = self.store.patch(_CM, "default", name,
                                       {"metadata": {"labels": {"app": app}}, "data": {"v": str(value)}},
                                       PatchType.MERGE)
        except NotFound:
            assert name not in self.state
            return
        before = self.state[name]
        if updated["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]:
            assert updated == before  # a no-op patch writes nothing
            return
        self.state[name] = updated
        self._record("MODIFIED", before, updated)

    @rule(name=st.sampled_from(OBJECT_NAMES))
    def delete(self, name: str) -> None:
        try:
            self.store.delete(_CM, "default", name)
        except NotFound:
            assert name not in self.state
            return
        self._record("DELETED", self.state.pop(name), None)

    def _expected(self, since: int, selector: str | None) -> list[tuple[str, str, str]]:
        """(type, name, resourceVersion) a watch from ``since`` must deliver (convertToWatchEvent)."""
        out = []
        for rv, _kind, before, after in self.history:
            if rv <= since:
                continue
            was = before is not None and _labels_match(selector, before["metadata"].get("labels") or {})
            now = after is not None and _labels_match(selector, after["metadata"].get("labels") or {})
            obj = after or before
            assert obj is not None
            name = obj["metadata"]["name"]
            if now and not was:
                out.append(("ADDED", name, str(rv)))
            elif now and was:
                out.append(("MODIFIED", name, str(rv)))
            elif was:
                out.append(("DELETED", name, str(rv)))
        return out

    @precondition(lambda self: self.history)
    @rule(pick=st.integers(min_value=0), selector=st.sampled_from(SELECTORS))
    def watch_from_a_past_version(self, pick: int, selector: str | None) -> None:
        versions = [rv for rv, *_ in self.history]
        since = versions[pick % len(versions)] - (1 if pick % 3 == 0 else 0)
        oldest_kept = versions[-WINDOW] if len(versions) >= WINDOW else versions[0]
        try:
            watch = self.store.watch(_CM, "default", selector, None, str(since))
        except Gone as err:
            event("watch from a version older than the window")
            assert since < oldest_kept - 1, (since, versions)
            assert err.message.startswith(f"too old resource version: {since} (")
            return
        assert since >= oldest_kept - 1, (since, versions)
        event("watch replayed from a past version")
        seen = self._drain(watch, len(self._expected(since, selector)))
        self.open.append((watch, selector, since, seen))
        assert [(e.type, e.object["metadata"]["name"], e.resource_version) for e in seen] == \
            self._expected(since, selector)

    def _drain(self, watch: Watch, count: int) -> list[WatchEvent]:
        async def take() -> list[WatchEvent]:
            return [await asyncio.wait_for(watch.__anext__(), 1) for _ in range(count)]

        return self.loop.run_until_complete(take())

    @invariant()
    def open_watches_follow_live_writes(self) -> None:
        for watch, selector, since, seen in self.open:
            expected = self._expected(since, selector)
            seen.extend(self._drain(watch, len(expected) - len(seen)))
            assert [(e.type, e.object["metadata"]["name"], e.resource_version) for e in seen] == expected


TestWatchReplay = WatchReplay.TestCase
TestWatchReplay.settings = MACHINE_SETTINGS

