"""The three patch formats the API server accepts.

The store calls :func:`apply_patch` with the stored object and the request's
patch; it returns the patched copy or raises :class:`BadRequest` (malformed
patch), :class:`Invalid` (a JSON-patch ``test`` that fails, as the server
answers 422 for it) or :class:`UnsupportedMediaType`.

* JSON merge patch, RFC 7386;
* JSON patch, RFC 6902 (``add``, ``remove``, ``replace``, ``move``, ``copy``, ``test``);
* strategic merge patch, the subset ``kubectl apply`` needs for our manifests:
  lists of containers, env, ports, volumes, volumeMounts... merge by their
  merge key (``k8s.io/api/core/v1/types.go`` ``patchMergeKey`` tags), other
  lists are replaced, ``$patch: delete`` / ``$patch: replace`` directives work
  on maps and list items, ``$retainKeys`` is honoured, and ``$setElementOrder``
  orders a merged list as the server does (so re-applying a manifest restores
  the order of its env, ports...).
"""

from __future__ import annotations

import json
from typing import Any

from fakes.state.objects import clone
from gateway.cluster.interface import BadRequest, Invalid, PatchType, UnsupportedMediaType


def apply_patch(target: dict[str, Any], patch: Any, patch_type: PatchType | str) -> dict[str, Any]:
    """Return ``target`` with ``patch`` applied; ``target`` itself is left untouched."""
    if isinstance(patch, (bytes, str)):
        try:
            patch = json.loads(patch)
        except ValueError as e:
            raise BadRequest(f"error decoding patch: {e}") from None
    try:
        # A Content-Type header may carry parameters ("; charset=utf-8").
        patch_type = PatchType(patch_type.split(";", 1)[0].strip() if isinstance(patch_type, str) else patch_type)
    except ValueError:
        raise UnsupportedMediaType(f"the body of the request was in an unknown format - accepted media types "
                                   f"include: {', '.join(p.value for p in PatchType)}") from None
    if patch_type is PatchType.APPLY:
        # Server-side apply is no patch format of its own: the store applies it (fakes.state.managedfields).
        raise UnsupportedMediaType(f"{patch_type.value} is applied by the store, not patched")
    if patch_type is PatchType.JSON:
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise BadRequest("json: cannot unmarshal array into Go value of type map[string]interface {}")
    if patch_type is PatchType.MERGE:
        return merge_patch(target, patch)
    return strategic_merge_patch(target, patch)


# ---------------------------------------------------------------- RFC 7386


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = clone(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ---------------------------------------------------------------- RFC 6902


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise BadRequest(f'the server rejected our request due to an error in our request: invalid JSON pointer "{path}"')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str], path: str) -> tuple[Any, str]:
    cur = doc
    for part in parts[:-1]:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise _missing(path)
    return cur, parts[-1]


_REJECTED = "the server rejected our request due to an error in our request"


def _missing(path: str) -> Invalid:
    # The server answers a JSON patch that points nowhere with 422 and no more than this (handlers/patch.go
    # jsonPatcher: errors.NewGenericServerResponse(422, ..., err.Error(), 0, false) keeps no cause).
    return Invalid(_REJECTED)


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent, last = _resolve(doc, parts, path)
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise _missing(path)


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent, last = _resolve(doc, parts, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise _missing(path)
    else:
        raise _missing(path)
    return doc


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    parent, last = _resolve(doc, parts, path)
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise _missing(path)
    return doc


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902 on a copy of ``target``; a failed ``test`` or a missing path is 422, a malformed op 400."""
    if not isinstance(ops, list):
        raise BadRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = clone(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise BadRequest(f"the server rejected our request due to an error in our request: invalid operation {op!r}")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise BadRequest(f"the server rejected our request due to an error in our request: missing value for {kind}")
        if kind == "add":
            doc = _add(doc, path, clone(op["value"]))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            doc = _add(_remove(doc, path), path, clone(op["value"])) if _pointer(path) else op["value"]
        elif kind in ("move", "copy"):
            value = clone(_get(doc, op.get("from", "")))
            if kind == "move":
                doc = _remove(doc, op.get("from", ""))
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise Invalid(_REJECTED)  # as _missing: the test's own text is not sent
        else:
            raise BadRequest(f"the server rejected our request due to an error in our request: "
                             f"Unexpected kind: {kind}")
    return doc


# ---------------------------------------------------------------- strategic merge

# Lists merged by key, by field name (patchMergeKey tags in k8s.io/api core/v1, apps/v1).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
# Lists of scalars merged as sets (patchStrategy:"merge" on a []string).
SET_LISTS = frozenset({"finalizers"})


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    """Apply a strategic merge patch (``kubectl apply``'s format) to a copy of ``target``."""
    if not isinstance(patch, dict):
        return clone(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result = clone(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if key.startswith("$setElementOrder/") or key.startswith("$deleteFromPrimitiveList/"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value, key)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = clone(value)
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if isinstance(result.get(name), list):
                result[name] = [v for v in result[name] if v not in value]
    for key, value in patch.items():
        if key.startswith("$setElementOrder/"):
            name = key.split("/", 1)[1]
            live = target.get(name) if isinstance(target, dict) else None
            if isinstance(result.get(name), list) and isinstance(value, list):
                result[name] = _set_element_order(name, result[name], value, live if isinstance(live, list) else [])
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_key(field: str, items: list[Any]) -> str | None:
    key = MERGE_KEYS.get(field)
    if field == "ports" and not any(isinstance(p, dict) and "containerPort" in p for p in items):
        key = "port"  # ServiceSpec.ports merge on "port", container ports on "containerPort"
    return key


def _set_element_order(field: str, merged: list[Any], order: list[Any], live: list[Any]) -> list[Any]:
    """``merged`` (the patched list) ordered by a ``$setElementOrder/<field>`` directive.

    As apimachinery's strategicpatch ``mergePatchIntoOriginal`` and ``normalizeElementOrder``
    (staging/src/k8s.io/apimachinery/pkg/util/strategicpatch/patch.go): items named in
    ``order`` take its order; the others (only on the server) keep their live order and
    go before an ordered item only where both are in the live list and theirs comes first.
    """
    if field in SET_LISTS:
        def ident(item: Any) -> Any:
            return item
    else:
        key = _merge_key(field, order + merged)
        if key is None:
            return merged

        def ident(item: Any) -> Any:
            return item.get(key) if isinstance(item, dict) else None
    wanted = [ident(o) for o in order]
    live_ids = [ident(item) for item in live]

    def live_index(item: Any) -> int:
        return live_ids.index(ident(item)) if ident(item) in live_ids else -1

    ordered = sorted((m for m in merged if ident(m) in wanted), key=lambda m: wanted.index(ident(m)))
    server_only = sorted((m for m in merged if ident(m) not in wanted), key=live_index)
    out: list[Any] = []
    while ordered and server_only:
        left, right = live_index(server_only[0]), live_index(ordered[0])
        out.append(server_only.pop(0) if 0 <= left < right else ordered.pop(0))
    return out + server_only + ordered


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    if field in SET_LISTS and isinstance(current, list):
        return list(current) + [v for v in patch if v not in current]
    key = _merge_key(field, patch)
    if key is None or not isinstance(current, list) or not all(isinstance(p, dict) for p in patch):
        return [clone(v) for v in patch if not (isinstance(v, dict) and v.get("$patch"))]
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [clone(p) for p in patch if p.get("$patch") != "replace"]
    result = [clone(item) for item in current]
    for item in patch:
        k = item.get(key)
        idx = next((i for i, cur in enumerate(result) if isinstance(cur, dict) and cur.get(key) == k), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del result[idx]
            continue
        if idx is None:
            result.append(strategic_merge_patch({}, item, field))
        else:
            result[idx] = strategic_merge_patch(result[idx], item, field)
    return result
