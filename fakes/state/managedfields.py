"""``metadata.managedFields``: who set which field, and server-side apply.

The store calls :func:`record_update` for every create, replace and patch
(operation ``Update``) and :func:`apply` for a ``PATCH`` of type
``application/apply-patch+yaml`` (operation ``Apply``).  They follow
k8s.io/apimachinery v0.37 ``pkg/util/managedfields/internal`` (the field
manager: entries keyed by manager, operation and subresource, sorted as
``sortEncodedManagedFields`` does, metadata fields stripped as
``stripmeta.go`` does, the strategies' reset fields ignored) and
sigs.k8s.io/structured-merge-diff v6 ``merge/update.go`` (``Updater.Update``
and ``Updater.Apply``: ownership moves to whoever changes a field, an apply
conflicts with other owners of a field it changes unless forced, fields an
applier stops applying are removed unless someone else owns them), wrapped as
``skipnonapplied.go`` wraps it: an object stored without managedFields (a create
that set nothing to own) stays so through updates, until an apply.

Who writes is the request's field manager, which the API server front end
puts in :data:`WRITER` (the ``fieldManager`` option, else the prefix of the
caller's User-Agent, as ``handlers/create.go`` ``managerOrUserAgent``).  An
in-process caller (``fakes.memory.MemoryCluster`` without a front end) writes
as :data:`DEFAULT_MANAGER`.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

from fakes.state import fieldsets
from fakes.state.fieldsets import FieldSet, Path
from fakes.state.objects import clone
from gateway.cluster.interface import Cause, Conflict
from gateway.cluster.resources import ResourceType

DEFAULT_MANAGER = "kernelgate"
"""The manager of writes that come in-process, with no request to name one."""
BEFORE_FIRST_APPLY = "before-first-apply"
"""The manager given what an untracked object holds when it is first applied to."""


@dataclass
class Writer:
    """The field manager of the request being served, whether it forces an apply, and (set by the
    store) whether its apply created the object."""

    manager: str
    force: bool = False
    created: bool = False


WRITER: contextvars.ContextVar[Writer | None] = contextvars.ContextVar("kernelgate_field_manager", default=None)
"""Set by ``fakes.apiserver.rest`` around each write it hands to the cluster."""


def writer() -> Writer:
    return WRITER.get() or Writer(DEFAULT_MANAGER)


def manager_from_user_agent(user_agent: str) -> str:
    """``prefixFromUserAgent``: what precedes the first ``/``, printable characters only, at most 128."""
    prefix = "".join(c for c in user_agent.split("/", 1)[0] if c.isprintable())
    return prefix.encode()[:128].decode(errors="ignore")


# stripmeta.go: fields no manager owns.
_STRIPPED: tuple[Path, ...] = (
    ("f:apiVersion",), ("f:kind",),
    *(("f:metadata", f"f:{name}") for name in ("name", "namespace", "creationTimestamp", "selfLink", "uid",
                                               "clusterName", "generation", "managedFields", "resourceVersion",
                                               "deletionTimestamp", "deletionGracePeriodSeconds")),
)
_WITH_STATUS = frozenset({"pods", "namespaces", "services", "deployments", "replicasets", "nodes",
                          "persistentvolumeclaims", "persistentvolumes", "poddisruptionbudgets"})


def _ignored(rt: ResourceType, subresource: str | None) -> tuple[Path, ...]:
    """The stripped fields and the strategy's ``GetResetFields`` for this write."""
    if subresource == "status":
        reset: tuple[Path, ...] = (("f:spec",),)
        if rt.plural == "pods":
            reset += (("f:metadata", "f:deletionTimestamp"), ("f:metadata", "f:ownerReferences"))
        return _STRIPPED + reset
    if rt.plural in _WITH_STATUS:
        return _STRIPPED + (("f:status",),)
    return _STRIPPED


def zero_object(rt: ResourceType) -> dict[str, Any]:
    """A new, empty object of the kind as the field manager sees it (``scope.Creater.New``): the fields
    Go's JSON encoding keeps though empty (no ``omitempty``) are there, so a write that fills them
    does not mark them as added."""
    obj: dict[str, Any] = {"metadata": {"creationTimestamp": None}}
    extra: dict[str, dict[str, Any]] = {
        "pods": {"spec": {"containers": None}, "status": {}},
        "namespaces": {"spec": {}, "status": {}},
        "services": {"spec": {}, "status": {"loadBalancer": {}}},
        "deployments": {"spec": {"selector": None, "template": {"metadata": {"creationTimestamp": None},
                                                               "spec": {"containers": None}},
                                 "strategy": {}}, "status": {}},
        "rolebindings": {"roleRef": {"apiGroup": "", "kind": "", "name": ""}},
        "clusterrolebindings": {"roleRef": {"apiGroup": "", "kind": "", "name": ""}},
        "roles": {"rules": None},
        "clusterroles": {"rules": None},
        "leases": {"spec": {}},
        "events": {"involvedObject": {}, "source": {}, "firstTimestamp": None, "lastTimestamp": None,
                   "eventTime": None, "reportingComponent": "", "reportingInstance": ""},
    }
    obj.update(clone(extra.get(rt.plural, {})))
    return obj


# ---------------------------------------------------------------- entries

Key = tuple[str, str, str]
"""(manager, operation, subresource): what keys an entry (``BuildManagerIdentifier``)."""


def _read(obj: dict[str, Any] | None) -> dict[Key, tuple[str, FieldSet]]:
    """The entries of ``obj``: key -> (time, set)."""
    out: dict[Key, tuple[str, FieldSet]] = {}
    for entry in ((obj or {}).get("metadata") or {}).get("managedFields") or []:
        if isinstance(entry, dict):
            key = (entry.get("manager", ""), entry.get("operation", ""), entry.get("subresource", ""))
            out[key] = (entry.get("time", ""), fieldsets.decode(entry.get("fieldsV1")))
    return out


def _write(rt: ResourceType, managers: dict[Key, tuple[str, FieldSet]]) -> list[dict[str, Any]]:
    """The ``managedFields`` list: no empty entry, sorted as ``sortEncodedManagedFields``."""
    entries = []
    for (manager, operation, subresource), (time, paths) in managers.items():
        if not paths:
            continue
        entry: dict[str, Any] = {"manager": manager, "operation": operation, "apiVersion": rt.api_version,
                                 "time": time, "fieldsType": "FieldsV1", "fieldsV1": fieldsets.encode(paths)}
        if subresource:
            entry["subresource"] = subresource
        entries.append(entry)
    entries.sort(key=lambda e: (e["operation"], e["time"], e["manager"], e["apiVersion"], e.get("subresource", "")))
    return entries


def _set_entries(obj: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    if entries:
        obj["metadata"]["managedFields"] = entries
    else:
        obj["metadata"].pop("managedFields", None)


def _without_managed(obj: dict[str, Any]) -> dict[str, Any]:
    view = clone(obj)
    if isinstance(view.get("metadata"), dict):
        view["metadata"].pop("managedFields", None)
    return view


# ---------------------------------------------------------------- Update


def record_update(rt: ResourceType, old: dict[str, Any] | None, seen: dict[str, Any], target: dict[str, Any],
                  *, subresource: str | None, now: str) -> None:
    """Set ``target``'s managedFields after an ``Update`` (``Updater.Update``) by the current writer.

    ``old`` is the stored object (``None`` for a create), ``seen`` the request's object as the field
    manager sees it (decoded and defaulted, before admission and the strategy), ``target`` the object
    about to be stored.
    """
    manager = writer().manager
    managers = _read(old)
    if old is not None and not managers:
        # skipnonapplied.go: an object stored without managedFields is not tracked by updates (only a create
        # starts tracking, and an apply: :func:`apply`).
        target["metadata"].pop("managedFields", None)
        return
    before = _without_managed(old) if old is not None else zero_object(rt)
    comparison = fieldsets.compare(before, _without_managed(seen))
    ignored = _ignored(rt, subresource)
    changed = fieldsets.without(comparison.added | comparison.modified, ignored)
    removed = fieldsets.without(comparison.removed, ignored)
    key = (manager, "Update", subresource or "")
    for other, (time, paths) in list(managers.items()):
        if other != key:
            managers[other] = (time, paths - changed - removed)
    time, previous = managers.get(key, ("", set()))
    mine = (previous - removed) | changed
    managers[key] = (now if mine != previous or not time else time, mine)
    _set_entries(target, _write(rt, managers))


# ---------------------------------------------------------------- Apply


def apply(rt: ResourceType, live: dict[str, Any] | None, config: dict[str, Any], *, now: str) -> dict[str, Any]:
    """The object after the current writer applies ``config`` to ``live`` (``None``: it does not exist),
    with its managedFields; :class:`Conflict` when it would change fields another manager owns and the
    writer does not force (``Updater.Apply``)."""
    who = writer()
    ignored = _ignored(rt, None)
    managers = _read(live)
    base = _without_managed(live) if live is not None else zero_object(rt)
    if live is not None and not managers:
        # skipnonapplied.go: the first apply to an object no manager tracks gives what it holds to an update
        # by "before-first-apply" first.
        held = fieldsets.compare(zero_object(rt), base)
        managers[(BEFORE_FIRST_APPLY, "Update", "")] = (now, fieldsets.without(held.added | held.modified, ignored))
    key = (who.manager, "Apply", "")
    applied = fieldsets.without(fieldsets.to_field_set(_without_managed(config)), ignored)
    last = managers.get(key, ("", set()))[1]
    managers[key] = (now, applied)
    merged = fieldsets.merge(base, _without_managed(config))
    merged = _prune(merged, last - applied, managers)
    comparison = fieldsets.compare(base, merged)
    changed = fieldsets.without(comparison.added | comparison.modified, ignored)
    removed = fieldsets.without(comparison.removed, ignored)
    conflicts = {other: paths & changed for other, (_t, paths) in managers.items() if other != key and paths & changed}
    if conflicts and not who.force:
        raise _conflict_error(rt, conflicts)
    for other, (time, paths) in list(managers.items()):
        if other != key:
            managers[other] = (time, paths - changed - removed)
    if live is not None and managers.get(key) and _read(live).get(key, ("", set()))[1] == applied \
            and merged == base:
        managers[key] = (_read(live)[key][0], applied)  # nothing changed: the entry keeps its time
    if live is None:
        merged.setdefault("metadata", {})
    _set_entries(merged, _write(rt, managers))
    return merged


def _prune(merged: dict[str, Any], dropped: FieldSet, managers: dict[Key, tuple[str, FieldSet]]) -> dict[str, Any]:
    """``Updater.prune``: remove what the applier applied last time and no longer does, unless another
    manager (or the applier's new configuration) owns it or something under it."""
    if not dropped:
        return merged
    owned: FieldSet = set().union(*(paths for _t, paths in managers.values()))
    gone = {p for p in dropped if not any(o[: len(p)] == p for o in owned)}
    return fieldsets.remove(merged, gone)


def _conflict_error(rt: ResourceType, conflicts: dict[Key, FieldSet]) -> Conflict:
    """``internal.NewConflictError``: one cause per conflicting field, the message grouped by manager."""

    def who(key: Key) -> str:
        manager, operation, subresource = key
        text = f'"{manager}"'
        if subresource:
            text += f' with subresource "{subresource}"'
        if operation == "Update":
            text += f" using {rt.api_version}"  # the manager's key holds no time, so none is printed
        return text

    pairs = [(who(key), path) for key in sorted(conflicts)
             for path in sorted(conflicts[key], key=fieldsets.iteration_order)]
    causes = [Cause(reason="FieldManagerConflict", message=f"conflict with {manager}",
                    field=fieldsets.render(path)) for manager, path in pairs]
    if len(pairs) == 1:
        message = f"Apply failed with 1 conflict: conflict with {pairs[0][0]}: {fieldsets.render(pairs[0][1])}"
    else:
        lines = []
        for manager in sorted({m for m, _p in pairs}):
            lines.append(f"conflicts with {manager}:")
            lines.extend(f"- {fieldsets.render(p)}" for m, p in pairs if m == manager)
        message = f"Apply failed with {len(pairs)} conflicts: " + "\n".join(lines)
    return Conflict(message, causes=causes)
