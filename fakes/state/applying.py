"""Writes that may create: server-side apply, and a PUT of a missing object where the kind allows it.

:class:`Applying` is a mixin of ``fakes.state.store.Store``: ``Store.patch``
hands it an apply configuration (``application/apply-patch+yaml``), which it
checks as ``k8s.io/apiserver`` ``handlers/patch.go`` (``applyPatcher``) does,
lets ``fakes.state.managedfields`` merge and settle ownership of, and stores
through the store's create or update path; ``Store.replace`` hands it the PUT
of a missing object of a kind whose strategy allows create on update.  Either
way the writer's ``created`` tells the front end to answer 201.
"""

from __future__ import annotations

from typing import Any

from fakes.state import admission, datafields, fieldsets, managedfields, versions
from gateway.cluster.interface import BadRequest, Conflict, NotFound, ServerError
from gateway.cluster.resources import ResourceType

# Strategies whose AllowCreateOnUpdate is true (kubernetes pkg/registry/core/event, coordination/lease,
# rbac/*): a PUT of a missing object creates it.
CREATE_ON_UPDATE = frozenset({"events", "leases", "roles", "rolebindings", "clusterroles", "clusterrolebindings"})


class Applying:
    """Server-side apply and create on update (mixed into ``Store``; uses its storage and write paths)."""

    # Provided by Store:
    _objects: dict[str, dict[tuple[str, str], dict[str, Any]]]

    @staticmethod
    def _ns(rt: ResourceType, namespace: str | None) -> str:
        raise NotImplementedError

    def _now(self) -> str:
        raise NotImplementedError

    @staticmethod
    def _conflict(rt: ResourceType, name: str) -> Conflict:
        raise NotImplementedError

    def create(self, rt: ResourceType, obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def _create(self, rt: ResourceType, obj: dict[str, Any], namespace: str | None,
                applied: list[dict[str, Any]] | None) -> dict[str, Any]:
        raise NotImplementedError

    def _update(self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any],
                subresource: str | None, applied: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def apply(self, rt: ResourceType, namespace: str | None, name: str, config: Any,
              subresource: str | None = None) -> dict[str, Any]:
        """Server-side apply of ``config`` by the current writer (``fakes.state.managedfields``): creates
        the object when it does not exist (the writer's ``created`` tells), else merges and stores it.

        As ``handlers/patch.go`` applyPatcher checks the configuration first: it must name its
        ``apiVersion`` and ``kind`` (400 ``invalid object type``), carry no ``managedFields``, and
        name this object if it names one.
        """
        if subresource is not None:
            # The apply patcher serves the main resource only here: the real one answers as below.
            raise NotFound("the server could not find the requested resource")
        if not isinstance(config, dict):
            raise BadRequest("error decoding patch: json: cannot unmarshal array into Go value of type "
                             "map[string]interface {}")
        self._check_apply(rt, namespace, name, config)
        live = self._objects[rt.plural].get((self._ns(rt, namespace), name))
        meta = config.get("metadata") or {}
        where = f"{meta.get('namespace') or ''}/{name}; {rt.group}/{rt.version}, Kind={rt.kind}"
        duplicate = fieldsets.first_duplicate(config)
        if duplicate is not None:
            # The field manager cannot make a typed object of a configuration whose keyed list holds one key
            # twice; handlers/patch.go answers 500 with this text.
            path, element = duplicate
            raise ServerError(f"failed to create typed patch object ({where}): {fieldsets.render(path)}: duplicate "
                              f"entries for key {fieldsets.render((element,))}")
        versions.object_version(meta.get("resourceVersion"))  # as for a PUT, whether the object exists or not
        if live is not None and meta.get("resourceVersion") and meta["resourceVersion"] != \
                live["metadata"]["resourceVersion"]:
            raise self._conflict(rt, name)
        merged = managedfields.apply(rt, live, config, now=self._now())
        try:
            admission.read_typed(rt, merged)
        except datafields.DecodeError as error:
            # handlers/patch.go applyPatcher converts the merged object to its type; what it cannot read is
            # answered 500, with this text.
            raise ServerError(f"failed to convert new object ({where}) to proper version: unable to convert "
                              f"unstructured object to {rt.group}/{rt.version}, Kind={rt.kind}: error decoding "
                              f"from json: {error}") from None
        merged["metadata"]["name"] = name
        if live is None:
            managedfields.writer().created = True
            if rt.namespaced:
                merged["metadata"]["namespace"] = namespace
            return self._create(rt, merged, namespace, applied=merged["metadata"].get("managedFields") or [])
        for field in ("resourceVersion", "uid", "creationTimestamp"):
            merged["metadata"][field] = live["metadata"].get(field)
        return self._update(rt, live, merged, None, applied=True)

    @staticmethod
    def _check_apply(rt: ResourceType, namespace: str | None, name: str, config: dict[str, Any]) -> None:
        version, kind = config.get("apiVersion") or "", config.get("kind") or ""
        group, _, ver = version.rpartition("/")
        if (version, kind) != (rt.api_version, rt.kind):
            raise BadRequest(f"invalid object type: {group}/{ver}, Kind={kind}")
        meta = config.get("metadata")
        if meta is None:
            return
        if not isinstance(meta, dict):
            raise BadRequest("metadata must be an object")
        if meta.get("managedFields") is not None:
            raise BadRequest("metadata.managedFields must be nil")
        if meta.get("name") and meta["name"] != name:
            raise BadRequest(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise BadRequest("the namespace of the provided object does not match the namespace sent on the request")

    def _creates_on_update(self, rt: ResourceType, namespace: str | None, name: str, obj: Any) -> bool:
        """Whether a PUT of ``obj`` creates it: its kind allows that, and nothing of that name is stored."""
        return (rt.plural in CREATE_ON_UPDATE and isinstance(obj, dict)
                and (self._ns(rt, namespace), name) not in self._objects[rt.plural])

    def _create_on_update(self, rt: ResourceType, namespace: str | None, name: str,
                          obj: dict[str, Any]) -> dict[str, Any]:
        """``Store.replace`` of a missing object: created under the URL's name, its resourceVersion dropped
        (``registry/generic/registry/store.go`` ``Update`` when creating)."""
        meta = {**(obj.get("metadata") or {}), "name": name}
        versions.object_version(meta.pop("resourceVersion", None))
        managedfields.writer().created = True
        return self.create(rt, {**obj, "metadata": meta}, namespace)
