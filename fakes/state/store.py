"""The simulated cluster's state: Kubernetes objects in memory, with the API server's semantics.

A :class:`Store` is what etcd plus the API server's registry are on a real
cluster: it holds wire-format objects, versions every write with one global
increasing ``resourceVersion`` (as etcd's revision), validates and defaults
objects, serves lists and watches with selectors, runs the namespace and
garbage-collection controllers synchronously after each write
(``fakes.state.lifecycle``), and holds the bearer tokens and injected faults.

Its callers are the front ends: ``fakes.memory.MemoryCluster`` (in-process,
authorizing each call) and ``fakes.apiserver.server`` (over HTTPS).  They do
authentication, authorization and fault injection; the store trusts them.

Thread model: a store belongs to the event loop of whoever created it; every
method must be called from that loop's thread.  The synchronous methods never
block; only iterating a :class:`~fakes.state.watching.Watch` awaits.

Objects go in and out as deep copies, so no caller can change stored state
except through these methods.
"""

from __future__ import annotations

import builtins
import json
import random
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from fakes.auth import rbac
from fakes.auth.identity import TokenRegistry
from fakes.state import admission, datafields, defaults, managedfields, validation, versions
from fakes.state.applying import Applying
from fakes.state.faults import Faults
from fakes.state.lifecycle import Lifecycle, Preconditions
from fakes.state.namespacedefaults import NamespaceDefaults
from fakes.state.nodeports import NodePorts
from fakes.state.objects import Key, clone
from fakes.state.patching import apply_patch
from fakes.state.reading import Reading
from fakes.state.subresources import LogReader, Subresources
from fakes.state.watching import Change, EventLog
from gateway.cluster.interface import (
    AlreadyExists,
    BadRequest,
    Cause,
    Conflict,
    Invalid,
    NotFound,
    PatchType,
    Propagation,
    ServerError,
)
from gateway.cluster.resources import RESOURCES, ResourceType

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apiserver/pkg/storage/names: no vowels, no look-alikes
_SERVER_META = ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                "generation", "selfLink", "managedFields")
# Kinds whose registries set metadata.generation (1 at create, +1 on a spec change; pods since 1.35's
# PodObservedGenerationTracking: pkg/registry/core/pod/strategy.go PrepareForCreate, updatePodGeneration).
_WITH_GENERATION = frozenset({"deployments", "pods"})
# Registries with ReturnDeletedObject (pkg/registry/core/*/storage/storage.go): DELETE answers with the object;
# the others answer with a Status of success.
_RETURN_DELETED = frozenset({"pods", "serviceaccounts", "services", "namespaces", "persistentvolumeclaims",
                             "persistentvolumes"})


class Store(Reading, Lifecycle, Subresources, Applying, NamespaceDefaults):
    """In-memory Kubernetes objects with a real API server's behaviour (see the module docstring).

    ``clock`` gives epoch seconds for timestamps and token expiry;
    ``watch_window`` is how many events of each resource a watch can replay;
    ``bookmark_interval`` is how long a watch that asked for bookmarks stays
    quiet before it gets one.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, watch_window: int = 1000,
                 bookmark_interval: float = 60.0) -> None:
        self._clock = clock
        self._rv = 0
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {p: {} for p in RESOURCES}
        self._by_uid: dict[str, Key] = {}
        self._dependents: dict[str, set[Key]] = {}
        self._namespace_counts: dict[str, int] = {}
        self._pending_owners: list[str] = []
        self._pending_dependents: list[Key] = []
        self._pending_default_accounts: set[str] = set()
        self._pending_root_ca: set[str] = set()
        self._root_ca = ""  # until an API server publishes its CA (NamespaceDefaults.publish_root_ca)
        self._pending_namespaces: set[str] = set()
        self._settling = False
        self._log = EventLog(watch_window, bookmark_interval)
        self._cluster_ips = defaults.ClusterIPs()
        self._defaults = defaults.Context(self._cluster_ips.allocate)
        self.node_ports = NodePorts()
        self._node_logs: dict[str, LogReader] = {}
        self._random = random.Random()
        self.tokens = TokenRegistry(clock)
        self.faults = Faults(self._log.drop)
        self._bootstrap()

    def _bootstrap(self) -> None:
        """What a fresh cluster holds: the bootstrap RBAC policy and the system namespaces."""
        for obj in rbac.bootstrap_objects():
            rt = RESOURCES["clusterroles" if obj["kind"] == "ClusterRole" else "clusterrolebindings"]
            self.create(rt, obj, None)
        for name in SYSTEM_NAMESPACES:
            self.create(RESOURCES["namespaces"], {"metadata": {"name": name}}, None)

    # ---------------------------------------------------------------- time and versions

    def _now(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._clock()))

    def _in_seconds(self, seconds: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._clock() + seconds))

    @property
    def resource_version(self) -> str:
        """The current global resourceVersion (the one a list returns)."""
        return str(self._rv)

    # ---------------------------------------------------------------- storage primitives

    def _stored(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self._objects[rt.plural].get((self._ns(rt, namespace), name))
        if obj is None:
            raise NotFound(f'{rt.group_resource} "{name}" not found', kind=rt.plural, name=name, group=rt.group)
        return obj

    @staticmethod
    def _ns(rt: ResourceType, namespace: str | None) -> str:
        if not rt.namespaced:
            return ""
        if not namespace:
            raise BadRequest("an empty namespace may not be set when a resource name is provided")
        return namespace

    def _put(self, rt: ResourceType, new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        """Store ``new`` (replacing ``old``) under a fresh resourceVersion, keep the indexes, tell watchers."""
        self._rv += 1
        meta = new["metadata"]
        meta["resourceVersion"] = str(self._rv)
        ns, name = meta.get("namespace", ""), meta["name"]
        self._objects[rt.plural][(ns, name)] = new
        key = (rt.plural, ns, name)
        if old is None:
            self._by_uid[meta["uid"]] = key
            if ns:
                self._namespace_counts[ns] = self._namespace_counts.get(ns, 0) + 1
        before, after = _owner_uids(old), _owner_uids(new)
        for uid in after - before:
            self._dependents.setdefault(uid, set()).add(key)
            if uid not in self._by_uid:
                # A reference to an owner that does not exist: the collector will delete or fix this object.
                self._pending_dependents.append(key)
        for uid in before - after:
            self._forget_dependent(uid, key)
        self._log.record(rt.plural, Change(self._rv, "MODIFIED" if old else "ADDED", new, old))
        if ns:
            self._written(rt, ns, name)
        if before - after:
            # A dependent let go of its owner: an owner waiting in the foreground may now go.
            self._release_foreground_owners([{"uid": uid} for uid in sorted(before - after)])
        return new

    def _forget_dependent(self, owner_uid: str, key: Key) -> None:
        deps = self._dependents.get(owner_uid)
        if deps is not None:
            deps.discard(key)
            if not deps:
                del self._dependents[owner_uid]

    def _remove(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """Remove stored ``obj``; watchers get DELETED with its last state at the deletion's version."""
        meta = obj["metadata"]
        ns, name, uid = meta.get("namespace", ""), meta["name"], meta["uid"]
        stored = self._objects[rt.plural].pop((ns, name))
        self._rv += 1
        final = dict(stored)
        final["metadata"] = dict(stored["metadata"], resourceVersion=str(self._rv))
        key = (rt.plural, ns, name)
        self._by_uid.pop(uid, None)
        if ns:
            self._namespace_counts[ns] -= 1
        for owner in _owner_uids(stored):
            self._forget_dependent(owner, key)
        self._log.record(rt.plural, Change(self._rv, "DELETED", final, stored))
        if ns:
            self._written(rt, ns, name)
        if rt.plural == "services":
            self.node_ports.release(stored)
        if uid in self._dependents:
            self._pending_owners.append(uid)
        self._release_foreground_owners(stored["metadata"].get("ownerReferences") or [])
        return final

    # ---------------------------------------------------------------- create

    def create(self, rt: ResourceType, obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        """POST: store a new object and return it as stored (uid, resourceVersion, defaults filled)."""
        return self._create(rt, obj, namespace, applied=None)

    def _create(self, rt: ResourceType, obj: dict[str, Any], namespace: str | None,
                applied: builtins.list[dict[str, Any]] | None) -> dict[str, Any]:
        """Create ``obj``; ``applied`` is its managedFields when an apply creates it (else the writer's
        ``Update`` entry is recorded)."""
        if not isinstance(obj, dict):
            raise BadRequest(f"the body of the request was in an unknown format: expected a {rt.kind} object")
        new = clone(obj)
        meta = new.get("metadata")
        if meta is None:
            meta = new["metadata"] = {}
        if not isinstance(meta, dict):
            raise BadRequest("metadata must be an object")
        admission.check_kind(rt, new)
        if applied is None:  # an applied configuration was decoded with the object it merged into
            admission.decode_typed(rt, new)
        version = meta.get("resourceVersion") if applied is None else None
        for field in _SERVER_META:
            meta.pop(field, None)
        seen = clone(new)
        defaults.decode_defaults(rt, seen)
        if rt.namespaced:
            admission.admit_namespace(rt, new, namespace, self._objects["namespaces"])
        else:
            meta.pop("namespace", None)
        defaults.prepare_for_create(rt, new, self._defaults)
        if rt.plural == "pods":
            admission.admit_pod(new, self._objects["serviceaccounts"], self._random_name)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(rt, meta)
        validation.validate_create(rt, new)
        if isinstance(version, str) and version.isdigit() and int(version):
            # etcd3 store Create, after validation, refuses a version it can read (one it cannot is ignored);
            # the server answers 500 with this text.
            raise ServerError("resourceVersion should not be set on objects to be created")
        if (meta.get("namespace", ""), meta["name"]) in self._objects[rt.plural]:
            raise AlreadyExists(f'{rt.group_resource} "{meta["name"]}" already exists',
                                kind=rt.plural, name=meta["name"], group=rt.group)
        if rt.plural == "services":
            self.node_ports.assign(new)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self._now()
        if rt.plural in _WITH_GENERATION:
            meta["generation"] = 1
        if applied is None:
            managedfields.record_update(rt, None, seen, new, subresource=None, now=self._now())
        elif applied:
            meta["managedFields"] = applied
        stored = self._put(rt, new, None)
        if rt.plural == "namespaces":
            self._namespace_created(meta["name"])
        created = clone(stored)
        self._settle()
        return created

    def _generate_name(self, rt: ResourceType, meta: dict[str, Any]) -> str:
        prefix = meta["generateName"]
        if len(prefix) > 58:
            prefix = prefix[:58]  # names.SimpleNameGenerator: at most 63 characters in all
        ns = meta.get("namespace", "")
        for _ in range(16):
            name = self._random_name(prefix)
            if (ns, name) not in self._objects[rt.plural]:
                return name
        return name

    def _random_name(self, prefix: str) -> str:
        """``names.SimpleNameGenerator.GenerateName``: ``prefix`` and five random characters."""
        return prefix + "".join(self._random.choice(_NAME_ALPHABET) for _ in range(5))

    # ---------------------------------------------------------------- update

    def replace(self, rt: ResourceType, namespace: str | None, name: str, obj: dict[str, Any],
                subresource: str | None = None) -> dict[str, Any]:
        """PUT: replace the object, or only its status with ``subresource="status"``.

        A ``metadata.resourceVersion`` in ``obj`` must be the stored one, else :class:`Conflict`; kinds that
        refuse unconditional updates (leases) need one.  Kinds whose strategy allows it create a missing object
        (the writer's ``created`` tells).
        """
        if subresource is None and self._creates_on_update(rt, namespace, name, obj):
            return self._create_on_update(rt, namespace, name, obj)
        if not isinstance(obj, dict):
            raise BadRequest(f"the body of the request was in an unknown format: expected a {rt.kind} object")
        new = clone(obj)
        admission.decode_typed(rt, new)  # the body is decoded before the object is looked up
        old = self._stored(rt, namespace, name)
        if not isinstance(new.get("metadata"), dict):
            new["metadata"] = {}
        admission.check_kind(rt, new)
        body_name = new["metadata"].get("name")
        if body_name and body_name != name:
            raise BadRequest(f"the name of the object ({body_name}) does not match the name on the URL ({name})")
        body_ns = new["metadata"].get("namespace")
        if rt.namespaced and body_ns and body_ns != old["metadata"]["namespace"]:
            raise BadRequest("the namespace of the provided object does not match the namespace sent on the request")
        rv = new["metadata"].get("resourceVersion")
        versions.object_version(rv)
        if not rv and rt.plural in validation.CONDITIONAL_UPDATES_ONLY:
            raise validation.unconditional_update_refused(rt, name)
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise self._conflict(rt, name)
        return self._update(rt, old, new, subresource)

    def patch(self, rt: ResourceType, namespace: str | None, name: str, patch: Any, patch_type: PatchType,
              subresource: str | None = None) -> dict[str, Any]:
        """PATCH: apply a merge, JSON or strategic merge patch to the object (or its status), or a
        server-side apply configuration (:meth:`apply`)."""
        if patch_type in (PatchType.APPLY, PatchType.APPLY.value):
            return self.apply(rt, namespace, name, patch, subresource)
        old = self._stored(rt, namespace, name)
        new = apply_patch(old, patch, patch_type)
        if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
            raise BadRequest("the patch leaves no object with metadata")
        try:
            admission.read_typed(rt, new)
        except datafields.DecodeError as error:
            raise _unreadable_patch(new, error) from None
        versions.object_version(new["metadata"].get("resourceVersion"))
        if new["metadata"].get("resourceVersion") != old["metadata"]["resourceVersion"]:
            raise self._conflict(rt, name)
        if new["metadata"].get("name") != name:
            # handlers/patch.go checkName, before the update is tried.
            raise BadRequest(f"the name of the object ({new['metadata'].get('name')}) does not match the name on "
                             f"the URL ({name})")
        admission.check_kind(rt, new)
        return self._update(rt, old, new, subresource)

    @staticmethod
    def _conflict(rt: ResourceType, name: str) -> Conflict:
        return Conflict(
            f'Operation cannot be fulfilled on {rt.group_resource} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            kind=rt.plural, name=name, group=rt.group,
        )

    def _update(self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any],
                subresource: str | None, applied: bool = False) -> dict[str, Any]:
        seen = clone(new)
        defaults.decode_defaults(rt, seen)
        new = admission.scope_write(rt, old, new, subresource)
        if applied:
            new["metadata"]["managedFields"] = clone(seen["metadata"].get("managedFields") or [])
        else:
            managedfields.record_update(rt, old, seen, new, subresource=subresource, now=self._now())
        if not new["metadata"].get("managedFields"):
            new["metadata"].pop("managedFields", None)
        meta, old_meta = new["metadata"], old["metadata"]
        for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation",
                      "namespace", "name"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if old_meta.get("deletionTimestamp"):
            added = [f for f in meta.get("finalizers") or [] if f not in (old_meta.get("finalizers") or [])]
            if added:
                raise validation.invalid(rt, old_meta["name"], [validation.FieldError(
                    "FieldValueForbidden", "metadata.finalizers",
                    detail=f"no new finalizers can be added if the object is being deleted, found new finalizers "
                           f"{_go_list(added)}")])
        if rt.plural in _WITH_GENERATION and new.get("spec") != old.get("spec"):
            meta["generation"] = old_meta.get("generation", 1) + 1
        validation.validate_update(rt, old, new)
        if rt.plural == "services":
            self.node_ports.assign(new, old)
        if new == old:
            return clone(old)  # a no-op write stores nothing and keeps the version, as etcd3's store does
        result = self._finish_update(rt, new, old)
        self._settle()
        return clone(result)

    # ---------------------------------------------------------------- delete

    def delete(self, rt: ResourceType, namespace: str | None, name: str, grace_period_seconds: int | None = None,
               propagation_policy: Propagation | None = None,
               preconditions: Preconditions | None = None) -> dict[str, Any]:
        """DELETE: the object's state after the request when it is still there (graceful or held by
        finalizers); once gone, the deleted object for kinds whose registry returns it, else a ``Status``.
        ``preconditions`` the object does not meet refuse it (409) before anything changes."""
        obj = self._stored(rt, namespace, name)
        if preconditions is not None:
            preconditions.check(rt, obj)
        if grace_period_seconds is not None and grace_period_seconds < 0:
            grace_period_seconds = 1  # rest/delete.go: a negative grace period is raised to 1
        if propagation_policy is not None:
            propagation_policy = Propagation(propagation_policy)
        result, gone = self._delete_object(rt, obj, grace_period_seconds, propagation_policy)
        self._settle()
        if gone and rt.plural not in _RETURN_DELETED:
            meta = result["metadata"]
            details = {"name": meta["name"], "kind": rt.plural, "uid": meta["uid"]}
            if rt.group:
                details["group"] = rt.group
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
        return clone(result)

    # ---------------------------------------------------------------- identities and RBAC

    def service_account_exists(self, namespace: str, name: str, uid: str) -> bool:
        """Whether the account a bound token names still exists with the same uid (``uid=""``: any)."""
        sa = self._objects["serviceaccounts"].get((namespace, name))
        return sa is not None and (not uid or sa["metadata"]["uid"] == uid)

    def rbac_objects(self, resource: str, namespace: str | None) -> Iterable[dict[str, Any]]:
        """Stored Roles/ClusterRoles/bindings for ``fakes.auth.rbac.authorize``: read-only, not copies."""
        objects = self._objects[resource]
        if namespace is None or not RESOURCES[resource].namespaced:
            return list(objects.values())
        return [obj for (ns, _n), obj in objects.items() if ns == namespace]


def _owner_uids(obj: dict[str, Any] | None) -> set[str]:
    if obj is None:
        return set()
    return {r.get("uid", "") for r in obj["metadata"].get("ownerReferences") or [] if isinstance(r, dict)}


def _unreadable_patch(patched: dict[str, Any], error: datafields.DecodeError) -> Invalid:
    """A patch whose result the typed decoder cannot read: ``handlers/patch.go`` answers 422 with the patched
    object quoted under the field ``patch`` (``errors.NewInvalid(schema.GroupKind{}, "", ...)``).  The real
    quote keeps the stored object's field order in what the patch left alone; this one sorts every key."""
    quoted = validation.FieldError("FieldValueInvalid", "patch",
                                   json.dumps(patched, separators=(",", ":"), sort_keys=True), str(error))
    return Invalid(f' "" is invalid: {quoted}', causes=[Cause(reason=quoted.type, message=quoted.body(),
                                                              field=quoted.field)])


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"
