"""Resource requests of the simulated API server, answered through the cluster interface.

:class:`fakes.apiserver.server.ApiServer` authenticates each request, opens a
:class:`~fakes.memory.MemoryCluster` for the caller and hands non-watch
resource requests to :func:`handle`, which decodes the request as the real
server's REST handlers do (``k8s.io/apiserver/pkg/endpoints/handlers``), calls
the interface method (a delete with the preconditions the interface lacks) and
returns the :class:`Reply`.  Everything that is
refused here is refused before the cluster is touched.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fakes.apiserver import decoding, tables
from fakes.apiserver.paths import ResourcePath
from fakes.memory import MemoryCluster
from fakes.state import managedfields
from gateway.cluster.interface import BadRequest, Cause, Invalid, MethodNotAllowed, Obj, PatchType

API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
"""The audience a kubeadm or kind API server issues service-account tokens for by default."""


@dataclass
class Reply:
    """What to send: an HTTP status and a JSON body (or text, for logs)."""

    status: int
    body: Any
    content_type: str = "application/json"


@dataclass(frozen=True)
class Call:
    """One request, as far as :func:`handle` needs it."""

    method: str
    target: ResourcePath
    query: Mapping[str, str]
    body: bytes
    content_type: str
    accept: str
    user_agent: str = ""


def success_status(code: int = 200, details: Obj | None = None) -> Obj:
    """A ``Status`` of success, as returned by binding creates and immediate deletes."""
    status: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code}
    if details:
        status["details"] = details
    return status


def not_allowed() -> MethodNotAllowed:
    """405 for a verb the resource does not serve (``handlers/rest.go`` ``NewMethodNotSupported``)."""
    return MethodNotAllowed("the server does not allow this method on the requested resource")


def _check_verb(call: Call, verb: str) -> None:
    if call.target.subresource is None and verb not in call.target.resource.verbs:
        raise not_allowed()


async def handle(cluster: MemoryCluster, call: Call) -> Reply:
    """Answer ``call`` (anything but a watch) through ``cluster``, as the request's field manager."""
    if call.query.get("dryRun") and call.method != "GET":
        # The cluster interface has no dry run; refusing beats writing what the caller meant to preview.
        raise BadRequest("dryRun is not supported by this server")
    token = managedfields.WRITER.set(_writer(call))
    try:
        return await _handle(cluster, call)
    finally:
        managedfields.WRITER.reset(token)


def _writer(call: Call) -> managedfields.Writer:
    """The field manager of a write (``handlers/create.go`` ``managerOrUserAgent``), checked as
    ``ValidatePatchOptions`` (and its create/update siblings) check it: at most 128 bytes, required for
    an apply, ``force`` only with one."""
    manager = call.query.get("fieldManager", "")
    applying = call.method == "PATCH" and call.content_type.split(";", 1)[0].strip() == PatchType.APPLY.value
    force = call.query.get("force")
    errors: list[tuple[str, str, str]] = []
    if len(manager.encode()) > 128:
        errors.append(("FieldValueTooLong", "fieldManager", "Too long: may not be more than 128 bytes"))
    if applying and not manager:
        errors.append(("FieldValueRequired", "fieldManager", "Required value: is required for apply patch"))
    if force is not None and call.method == "PATCH" and not applying:
        errors.append(("FieldValueForbidden", "force", "Forbidden: may not be specified for non-apply patch"))
    if errors and call.method in ("POST", "PUT", "PATCH"):
        options = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions"}[call.method]
        text = ", ".join(f"{field}: {message}" for _r, field, message in errors)
        raise Invalid(f'{options}.meta.k8s.io "" is invalid: ' + (f"[{text}]" if len(errors) > 1 else text),
                      kind=options, group="meta.k8s.io",
                      causes=[Cause(reason=r, message=m, field=f) for r, f, m in errors])
    return managedfields.Writer(manager or managedfields.manager_from_user_agent(call.user_agent),
                                force=applying and force == "true")


async def _handle(cluster: MemoryCluster, call: Call) -> Reply:
    t = call.target
    if call.method == "GET":
        if t.is_collection:
            _check_verb(call, "list")
            return await _list(cluster, call)
        _check_verb(call, "get")
        return await _get(cluster, call)
    if call.method == "POST":
        _check_verb(call, "create")
        return await _create(cluster, call)
    if t.is_collection and call.method != "DELETE":
        raise not_allowed()
    if call.method == "PUT":
        _check_verb(call, "update")
        return await _replace(cluster, call)
    if call.method == "PATCH":
        _check_verb(call, "patch")
        return await _patch(cluster, call)
    if call.method == "DELETE":
        if t.is_collection:
            _check_verb(call, "deletecollection")
            return await _delete_collection(cluster, call)
        _check_verb(call, "delete")
        return await _delete(cluster, call)
    raise not_allowed()


# ------------------------------------------------------------------------------------------ reads


async def _list(cluster: MemoryCluster, call: Call) -> Reply:
    t = call.target
    if t.subresource is not None:
        raise not_allowed()
    limit = call.query.get("limit")
    result = await cluster.list(
        t.resource.plural,
        namespace=t.namespace,
        label_selector=call.query.get("labelSelector") or None,
        field_selector=call.query.get("fieldSelector") or None,
        limit=decoding.int_param(limit, "limit") if limit else None,
        continue_token=call.query.get("continue") or None,
    )
    if tables.wants_table(call.accept):
        listed = result.get("metadata", {})
        return Reply(200, tables.to_table(
            t.resource.plural, result.get("items", []),
            list_metadata={"resourceVersion": listed.get("resourceVersion", ""),
                           **({"continue": listed["continue"]} if listed.get("continue") else {})},
            include_object=call.query.get("includeObject", "Metadata"),
            type_meta={"kind": t.resource.kind, "apiVersion": t.resource.api_version},
        ))
    return Reply(200, result)


async def _get(cluster: MemoryCluster, call: Call) -> Reply:
    t = call.target
    assert t.name is not None
    if t.subresource == "log":
        # `previous`, `sinceSeconds`, `timestamps` are accepted; the log is what exists now (a followed log is
        # streamed from the node by `fakes.apiserver.streaming`).
        tail = call.query.get("tailLines")
        text = await cluster.read_pod_log(
            t.name, t.namespace or "", container=call.query.get("container") or None,
            tail_lines=decoding.int_param(tail, "tailLines") if tail else None,
        )
        if not text and not (await cluster.get("pods", t.name, namespace=t.namespace)).get("spec", {}).get("nodeName"):
            return Reply(204, "", "text/plain")  # LogLocation gives no location for an unscheduled pod: no content
        return Reply(200, text, "text/plain")
    if t.subresource not in (None, "status"):
        raise not_allowed()
    obj = await cluster.get(t.resource.plural, t.name, namespace=t.namespace)
    if tables.wants_table(call.accept):
        return Reply(200, tables.to_table(
            t.resource.plural, [obj], list_metadata={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
            include_object=call.query.get("includeObject", "Metadata"),
        ))
    return Reply(200, obj)


# ------------------------------------------------------------------------------------------ writes


def _checked_body(call: Call) -> Obj:
    """The decoded object of a create/update, checked against the URL as the real handlers check it
    (``handlers/create.go``, ``handlers/update.go``, ``rest/create.go``)."""
    decoding.field_validation(call.query.get("fieldValidation"))
    obj = decoding.decode_body(call.body, call.content_type)
    t = call.target
    expected_kind = t.resource.kind
    if t.subresource == "binding":
        expected_kind = "Binding"
    elif t.subresource == "token":
        expected_kind = "TokenRequest"
    elif t.subresource is not None:
        expected_kind = t.resource.kind
    kind = obj.get("kind")
    if kind and kind != expected_kind:
        raise BadRequest(f"the object provided is unrecognized (must be of type {expected_kind}): {call.body[:200].decode(errors='replace')}")
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise BadRequest("metadata must be an object")
    if t.resource.namespaced and t.namespace is not None and t.subresource is None:
        meta = obj.setdefault("metadata", {})
        if meta.get("namespace") and meta["namespace"] != t.namespace:
            raise BadRequest("the namespace of the provided object does not match the namespace sent on the request")
    return obj


async def _create(cluster: MemoryCluster, call: Call) -> Reply:
    t = call.target
    body = _checked_body(call)
    if t.is_collection:
        if t.resource.plural in ("selfsubjectaccessreviews", "subjectaccessreviews"):
            raise not_allowed()  # answered by the server itself, which knows the caller
        created = await cluster.create(t.resource.plural, body, namespace=t.namespace)
        return Reply(201, created)
    assert t.name is not None
    if t.subresource == "binding":
        node = (body.get("target") or {}).get("name")
        if not node:
            raise BadRequest("binding target name is required")
        await cluster.bind_pod(t.name, t.namespace or "", node)
        return Reply(201, success_status(201))
    if t.subresource == "token":
        spec = body.get("spec") or {}
        expiration = int(spec.get("expirationSeconds") or 3600)
        token = await cluster.create_token(t.name, t.namespace or "", expiration_seconds=expiration)
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=expiration)
        return Reply(201, {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": t.name, "namespace": t.namespace, "creationTimestamp": None},
            # with no audiences asked for, the token is for the API server's own (--api-audiences)
            "spec": {**spec, "audiences": spec.get("audiences") or [API_AUDIENCE], "expirationSeconds": expiration},
            "status": {"token": token, "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")},
        })
    raise not_allowed()


async def _replace(cluster: MemoryCluster, call: Call) -> Reply:
    t = call.target
    assert t.name is not None
    if t.subresource not in (None, "status", "finalize"):
        raise not_allowed()
    body = _checked_body(call)
    meta = body.setdefault("metadata", {})
    if meta.get("name") and meta["name"] != t.name:
        raise BadRequest(f"the name of the object ({meta['name']}) does not match the name on the URL ({t.name})")
    meta["name"] = t.name
    replaced = await cluster.replace(t.resource.plural, t.name, body, namespace=t.namespace, subresource=t.subresource)
    return Reply(201 if managedfields.writer().created else 200, replaced)


async def _patch(cluster: MemoryCluster, call: Call) -> Reply:
    t = call.target
    assert t.name is not None
    if t.subresource not in (None, "status"):
        raise not_allowed()
    decoding.field_validation(call.query.get("fieldValidation"))
    patch_type = decoding.patch_type(call.content_type)
    patch = decoding.decode_patch(call.body, patch_type)
    patched = await cluster.patch(
        t.resource.plural, t.name, patch, namespace=t.namespace, patch_type=patch_type, subresource=t.subresource
    )
    return Reply(201 if managedfields.writer().created else 200, patched)


async def _delete(cluster: MemoryCluster, call: Call) -> Reply:
    t = call.target
    assert t.name is not None
    if t.subresource is not None:
        raise not_allowed()
    options = decoding.delete_options(call.query, call.body)
    result = await cluster.delete(
        t.resource.plural, t.name, namespace=t.namespace, grace_period_seconds=options.grace_period_seconds,
        propagation_policy=options.propagation, preconditions=options.preconditions,
    )
    return Reply(200, result)


async def _delete_collection(cluster: MemoryCluster, call: Call) -> Reply:
    """``deletecollection``: the interface has no such call, so list the matching objects and
    delete each (the real server does the same inside ``registry/generic/registry/store.go``)."""
    t = call.target
    options = decoding.delete_options(call.query, call.body)
    listed = await cluster.list(
        t.resource.plural, namespace=t.namespace,
        label_selector=call.query.get("labelSelector") or None, field_selector=call.query.get("fieldSelector") or None,
    )
    deleted = []
    for item in listed.get("items", []):
        meta = item["metadata"]
        result = await cluster.delete(
            t.resource.plural, meta["name"], namespace=meta.get("namespace") if t.resource.namespaced else None,
            grace_period_seconds=options.grace_period_seconds, propagation_policy=options.propagation,
            preconditions=options.preconditions,
        )
        deleted.append(result if result.get("kind") == t.resource.kind else item)
    return Reply(200, {**listed, "items": deleted})
