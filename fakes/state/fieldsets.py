"""Field sets: which fields of an object a manager owns, as server-side apply counts them.

``fakes.state.managedfields`` builds ``metadata.managedFields`` from these.  A
field set is a Python ``set`` of paths; a path is a tuple of path elements in
the ``fieldsV1`` spelling (``f:name``, ``k:{"name":"main"}``, ``v:"x"``).
The functions follow sigs.k8s.io/structured-merge-diff v6 (the library the
v1.37 API server uses): :func:`to_field_set` is ``typed/tofieldset.go``,
:func:`compare` is ``typed/compare.go``, :func:`merge` is ``typed/merge.go``,
:func:`remove` is ``typed/remove.go``, :func:`encode`/:func:`decode` are
``fieldpath/serialize.go``.

Where the real server reads each field's shape from the OpenAPI schema, this
module knows a short list (:data:`LIST_KEYS`, :data:`SET_LISTS`,
:data:`ATOMIC_FIELDS`): lists keyed by their ``listMapKey``, lists of scalars
kept as sets, and atomic fields.  Every other list is atomic (the default of
``+listType`` for built-in types), every other map is granular.  That covers
the kinds the simulated cluster serves; docs/known-differences.md names what
it does not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fakes.state.objects import clone

Path = tuple[str, ...]
FieldSet = set[Path]


class _Missing:
    """An absent field (a JSON ``null`` is present)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

# +listType=map with its +listMapKey(s), by field name (k8s.io/api core/v1, apps/v1, meta/v1 types.go).
LIST_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "hostAliases": ("ip",),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
    "resourceClaims": ("name",),
    "containerStatuses": ("name",),
    "initContainerStatuses": ("name",),
    "managedFields": (),
}
_CONTAINER_PORT_KEYS = ("containerPort", "protocol")
_SERVICE_PORT_KEYS = ("port", "protocol")
SET_LISTS = frozenset({"finalizers"})
"""+listType=set: lists of scalars whose items are owned one by one."""
ATOMIC_FIELDS = frozenset({"roleRef", "subjects", "rules", "selector", "nodeSelector", "tolerations", "command",
                           "args", "readinessGates", "nodeSelectorTerms", "involvedObject", "related"})
"""Fields owned as a whole: atomic structs (``roleRef``, ``LabelSelector``, ``ObjectReference``), atomic maps (a Service's
``selector``, ``nodeSelector``: ``+mapType=atomic``) and atomic lists (``+listType=atomic``)."""
ATOMIC_ITEMS = frozenset({"ownerReferences", "secrets"})
"""Keyed lists whose items are atomic structs (``OwnerReference`` and a ServiceAccount's ``secrets``, each an
``ObjectReference``, are ``+structType=atomic``)."""
_PER_ITEM_DEFAULTS = {"protocol": "TCP"}  # key fields a list item may leave to defaulting


def _atomic(name: str, parent: Path) -> bool:
    if name == "imagePullSecrets" and parent == ():
        return True  # ServiceAccount.imagePullSecrets is +listType=atomic; a pod spec's is keyed by name
    return name in ATOMIC_FIELDS


def _list_keys(name: str, parent: Path) -> tuple[str, ...] | None:
    if name == "ports":
        in_container = any(p in ("f:containers", "f:initContainers", "f:ephemeralContainers") for p in parent)
        return _CONTAINER_PORT_KEYS if in_container else _SERVICE_PORT_KEYS
    if name == "secrets" and parent == ():
        return ("name",)  # ServiceAccount.secrets
    keys = LIST_KEYS.get(name)
    return keys if keys else None


def item_element(keys: tuple[str, ...], item: Any) -> str:
    """The ``k:{...}`` element naming a list item by its keys (sorted by name, as ``KeyByFields``)."""
    fields = {k: item.get(k, _PER_ITEM_DEFAULTS.get(k)) for k in sorted(keys)} if isinstance(item, dict) else {}
    return "k:" + json.dumps({k: v for k, v in fields.items() if v is not None}, separators=(",", ":"))


def value_element(value: Any) -> str:
    return "v:" + json.dumps(value, separators=(",", ":"))


def _shape(name: str, parent: Path, value: Any) -> tuple[str, tuple[str, ...] | None]:
    """``("atomic" | "map" | "keyed" | "set" | "scalar", keys)`` of field ``name`` under ``parent``."""
    if _atomic(name, parent):
        return "atomic", None
    if isinstance(value, dict):
        return "map", None
    if isinstance(value, list):
        if name in SET_LISTS:
            return "set", None
        keys = _list_keys(name, parent)
        return ("keyed", keys) if keys else ("atomic", None)
    return "scalar", None


# ---------------------------------------------------------------- an object's fields (ToFieldSet)


def to_field_set(obj: dict[str, Any]) -> FieldSet:
    """Every field ``obj`` sets, as an applied configuration owns them (``tofieldset.go``)."""
    out: FieldSet = set()
    _map_fields(obj, (), out)
    return out


def _map_fields(obj: dict[str, Any], path: Path, out: FieldSet) -> None:
    for key, value in obj.items():
        here = (*path, f"f:{key}")
        kind, keys = _shape(key, path, value)
        if kind == "atomic" or kind == "scalar":
            out.add(here)
        elif kind == "map":
            if not value:
                out.add(here)
            else:
                _map_fields(value, here, out)
        elif kind == "set":
            out.update((*here, value_element(v)) for v in value)
        else:
            assert keys is not None
            for item in value:
                item_path = (*here, item_element(keys, item))
                out.add(item_path)
                if isinstance(item, dict) and key not in ATOMIC_ITEMS:
                    _map_fields(item, item_path, out)


def first_duplicate(obj: dict[str, Any]) -> tuple[Path, str] | None:
    """The first keyed list of ``obj`` (in document order) holding two items of one key, and that key's element:
    what makes a typed object of it fail (``typed/validate.go``: ``duplicate entries for key``)."""
    return _map_duplicate(obj, ())


def _map_duplicate(obj: dict[str, Any], path: Path) -> tuple[Path, str] | None:
    for key, value in obj.items():
        here = (*path, f"f:{key}")
        kind, keys = _shape(key, path, value)
        found = None
        if kind == "map":
            found = _map_duplicate(value, here)
        elif kind == "keyed":
            assert keys is not None
            seen: set[str] = set()
            for item in value:
                element = item_element(keys, item)
                if element in seen:
                    return here, element
                seen.add(element)
                if isinstance(item, dict) and key not in ATOMIC_ITEMS:
                    found = found or _map_duplicate(item, (*here, element))
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------- what changed (Compare)


class Comparison:
    """Paths ``added``, ``modified`` and ``removed`` between two versions of an object."""

    def __init__(self) -> None:
        self.added: FieldSet = set()
        self.modified: FieldSet = set()
        self.removed: FieldSet = set()


def compare(old: dict[str, Any], new: dict[str, Any]) -> Comparison:
    """``TypedValue.Compare``: leaves that differ, and granular nodes that appeared or went."""
    result = Comparison()
    _compare_map(old, new, (), result)
    return result


def _empty(value: Any) -> bool:
    return value is MISSING or value is None or value == {} or value == []


def _leaf(old: Any, new: Any, path: Path, result: Comparison) -> None:
    if old is MISSING:
        result.added.add(path)
    elif new is MISSING:
        result.removed.add(path)
    elif old != new:
        result.modified.add(path)


def _compare_value(name: str, parent: Path, old: Any, new: Any, result: Comparison) -> None:
    path = (*parent, f"f:{name}")
    sample = new if new is not MISSING and new is not None else old
    kind, keys = _shape(name, parent, sample)
    absent = (MISSING, None)
    if kind in ("atomic", "scalar") or (_empty(old) and _empty(new)) or (
            type(old) is not type(new) and old not in absent and new not in absent):
        _leaf(old, new, path, result)
        return
    if kind == "map":
        _compare_map(old if isinstance(old, dict) else {}, new if isinstance(new, dict) else {}, path, result)
    elif kind == "set":
        before = {value_element(v) for v in old} if isinstance(old, list) else set()
        after = {value_element(v) for v in new} if isinstance(new, list) else set()
        result.added.update((*path, e) for e in after - before)
        result.removed.update((*path, e) for e in before - after)
    else:
        assert keys is not None
        _compare_items(keys, old if isinstance(old, list) else [], new if isinstance(new, list) else [], path,
                       result, atomic_items=name in ATOMIC_ITEMS)
    if old is MISSING:
        result.added.add(path)
    elif new is MISSING:
        result.removed.add(path)


def _compare_map(old: dict[str, Any], new: dict[str, Any], path: Path, result: Comparison) -> None:
    for key in dict.fromkeys([*old, *new]):
        _compare_value(key, path, old.get(key, MISSING), new.get(key, MISSING), result)


def _compare_items(keys: tuple[str, ...], old: list[Any], new: list[Any], path: Path, result: Comparison, *,
                   atomic_items: bool) -> None:
    before = {item_element(keys, i): i for i in old}
    after = {item_element(keys, i): i for i in new}
    for element in dict.fromkeys([*before, *after]):
        item_path = (*path, element)
        was, now = before.get(element, MISSING), after.get(element, MISSING)
        granular = not atomic_items and (isinstance(was, dict) or isinstance(now, dict))
        if granular:
            _compare_map(was if isinstance(was, dict) else {}, now if isinstance(now, dict) else {}, item_path,
                         result)
        if was is MISSING:
            result.added.add(item_path)
        elif now is MISSING:
            result.removed.add(item_path)
        elif not granular and was != now:
            result.modified.add(item_path)


# ---------------------------------------------------------------- applying a configuration (Merge, Remove)


def merge(live: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """``TypedValue.Merge``: ``config`` over ``live``; keyed lists merge item by item, in the order
    ``merge.go`` gives them (the configuration's order for the items it names, live-only items kept
    in their place)."""
    return _merge_map(live, config, ())


def _merge_map(live: dict[str, Any], config: dict[str, Any], path: Path) -> dict[str, Any]:
    out = clone(live)
    for key, value in config.items():
        kind, keys = _shape(key, path, value)
        here = (*path, f"f:{key}")
        current = out.get(key, MISSING)
        if kind == "map" and isinstance(current, dict):
            out[key] = _merge_map(current, value, here)
        elif kind == "set" and isinstance(current, list):
            out[key] = list(current) + [v for v in value if v not in current]
        elif kind == "keyed" and isinstance(current, list):  # an empty list in a configuration keeps the items
            assert keys is not None
            out[key] = _merge_items(keys, current, value, here)
        else:
            out[key] = clone(value)
    return out


def _merge_items(keys: tuple[str, ...], live: list[Any], config: list[Any], path: Path) -> list[Any]:
    live_by = {item_element(keys, i): i for i in live}
    config_by = {item_element(keys, i): i for i in config}
    shared = [e for e in config_by if e in live_by]
    out: list[Any] = []
    done: set[str] = set()
    li = ci = 0
    live_keys, config_keys = list(live_by), list(config_by)
    while li < len(live_keys) or ci < len(config_keys):
        if li < len(live_keys) and ci < len(config_keys) and live_keys[li] == config_keys[ci]:
            element = live_keys[li]
            out.append(_merge_item(live_by[element], config_by[element], (*path, element)))
            done.add(element)
            shared = shared[1:] if shared and shared[0] == element else shared
            li += 1
            ci += 1
            continue
        if li < len(live_keys):
            element = live_keys[li]
            if element not in config_by:
                out.append(clone(live_by[element]))
                li += 1
                continue
            if element in done or (shared and shared[0] != element):
                li += 1
                continue
        if ci < len(config_keys):
            element = config_keys[ci]
            if element in done:
                ci += 1
                continue
            if element in live_by:
                out.append(_merge_item(live_by[element], config_by[element], (*path, element)))
            else:
                out.append(clone(config_by[element]))
            done.add(element)
            shared = [e for e in shared if e != element]
            ci += 1
            continue
        li += 1
    return out


def _merge_item(live: Any, config: Any, path: Path) -> Any:
    if isinstance(live, dict) and isinstance(config, dict):
        return _merge_map(live, config, path)
    return clone(config)


def remove(obj: dict[str, Any], paths: Iterable[Path]) -> dict[str, Any]:
    """``obj`` without the fields at ``paths`` (``RemoveItems``): a field, a list item, a set member.

    Outermost first, as structured-merge-diff's ``removingWalker`` walks from the root and drops a
    matched field or item whole: an item removed with its key fields must be found by its key before
    they go (the paths under a removed item are then not found, and left).
    """
    out = clone(obj)
    for path in sorted(paths, key=len):
        _remove_path(out, path)
    return out


def _remove_path(root: Any, path: Path) -> None:
    """Remove one path; maps and lists it leaves empty go too (the walker leaves them null, and Go's
    ``omitempty`` drops them from the object)."""
    node = root
    trail: list[tuple[dict[str, Any], str]] = []
    for i, element in enumerate(path):
        last = i == len(path) - 1
        if element.startswith("f:") and isinstance(node, dict):
            name = element[2:]
            if name not in node:
                return
            if last:
                del node[name]
                break
            trail.append((node, name))
            node = node[name]
        elif element.startswith(("k:", "v:")) and isinstance(node, list):
            match = _find_item(node, element, path[i - 1][2:] if i else "", path[: i - 1])
            if match is None:
                return
            if last:
                node.remove(match)
                break
            trail = []
            node = match
        else:
            return
    for parent, name in reversed(trail):
        if parent[name] in ({}, []):
            del parent[name]
        else:
            break


def _find_item(items: list[Any], element: str, name: str, parent: Path) -> Any:
    if element.startswith("v:"):
        wanted = json.loads(element[2:])
        return wanted if wanted in items else None
    keys = _list_keys(name, parent) or ()
    return next((i for i in items if item_element(keys, i) == element), None)


# ---------------------------------------------------------------- fieldsV1 (serialize.go)


def encode(paths: FieldSet) -> dict[str, Any]:
    """The ``fieldsV1`` tree of a set: a member with children carries ``"."``."""
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    _mark_members(tree, (), paths)
    return tree


def _mark_members(node: dict[str, Any], path: Path, members: FieldSet) -> None:
    for element, child in node.items():
        here = (*path, element)
        if child:
            _mark_members(child, here, members)
            if here in members:
                ordered = {".": {}, **child}
                child.clear()
                child.update(ordered)


def decode(tree: Any, path: Path = ()) -> FieldSet:
    """The set a ``fieldsV1`` tree holds."""
    out: FieldSet = set()
    if not isinstance(tree, dict):
        return out
    for element, child in tree.items():
        if element == ".":
            out.add(path)
            continue
        here = (*path, element)
        if child:
            out |= decode(child, here)
        else:
            out.add(here)
    return out


def without(paths: FieldSet, prefixes: Iterable[Path]) -> FieldSet:
    """``RecursiveDifference``: ``paths`` less every path at or under one of ``prefixes``."""
    cut = tuple(prefixes)
    return {p for p in paths if not any(p[: len(c)] == c for c in cut)}


def iteration_order(path: Path) -> tuple[tuple[int, str], ...]:
    """A sort key putting paths in ``fieldpath.Set.Iterate`` order: at each level the set's members
    (paths ending there) before its children, each sorted (sigs.k8s.io/structured-merge-diff
    fieldpath/set.go, ``iteratePrefix``); a conflict error lists its fields so."""
    return tuple((0 if i == len(path) - 1 else 1, element) for i, element in enumerate(path))


def render(path: Path) -> str:
    """A path as a conflict names it (``fieldpath.Path.String``): ``.spec.containers[name="main"].image``."""
    parts = []
    for element in path:
        if element.startswith("f:"):
            parts.append("." + element[2:])
        elif element.startswith("k:"):
            fields = json.loads(element[2:])
            parts.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(fields.items())) + "]")
        elif element.startswith("v:"):
            parts.append(f"[={element[2:]}]")
    return "".join(parts)
