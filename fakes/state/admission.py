"""Admission and write strategies: what the API server checks and limits before the store writes.

Called by :class:`fakes.state.store.Store` on create and update, as a real API server runs its
admission plugins (``plugin/pkg/admission``) and each registry's strategy
(``PrepareForCreate``/``PrepareForUpdate``) before storage.  Pure functions of the request and
what the store holds; each raises the error the real server answers with.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

from fakes.state import defaults
from fakes.state.objects import clone
from gateway.cluster.interface import BadRequest, Cause, Forbidden, NotFound
from gateway.cluster.resources import ResourceType


def check_kind(rt: ResourceType, obj: dict[str, Any]) -> None:
    """The body's ``kind``/``apiVersion`` must be the resource's (or absent, then filled in)."""
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if kind and kind != rt.kind:
        raise BadRequest(f'{kind} in version "{api_version or rt.version}" cannot be handled as a {rt.kind}: '
                         f"the object provided is unrecognized (kind {kind} is not {rt.kind})")
    if api_version and api_version != rt.api_version:
        raise BadRequest(f"the API version in the data ({api_version}) does not match the expected API version "
                         f"({rt.api_version})")
    obj["kind"], obj["apiVersion"] = rt.kind, rt.api_version


def admit_namespace(rt: ResourceType, obj: dict[str, Any], namespace: str | None,
                    namespaces: Mapping[tuple[str, str], dict[str, Any]]) -> None:
    """The request's namespace must match the body's, exist, and not be terminating (NamespaceLifecycle)."""
    meta = obj["metadata"]
    body_ns = meta.get("namespace")
    if namespace and body_ns and body_ns != namespace:
        raise BadRequest("the namespace of the provided object does not match the namespace sent on the request")
    namespace = namespace or body_ns
    if not namespace:
        raise BadRequest("an empty namespace may not be set during creation")
    meta["namespace"] = namespace
    ns = namespaces.get(("", namespace))
    if ns is None:
        raise NotFound(f'namespaces "{namespace}" not found', kind="namespaces", name=namespace)
    if ns["metadata"].get("deletionTimestamp"):
        # plugin/pkg/admission/namespace/lifecycle/admission.go
        why = f"unable to create new content in namespace {namespace} because it is being terminated"
        name = meta.get("name", "")
        raise Forbidden(
            f'{rt.group_resource} "{name}" is forbidden: {why}' if name else f"{rt.group_resource} is forbidden: {why}",
            kind=rt.plural, name=name, group=rt.group,
            causes=[Cause(reason="NamespaceTerminating", message=why, field="metadata.namespace")],
        )


def admit_pod(pod: dict[str, Any], accounts: Container[tuple[str, str]]) -> None:
    """ServiceAccount admission: the pod's account must exist, else the create is refused with 403 Forbidden.

    As kubernetes plugin/pkg/admission/serviceaccount/admission.go does in ``Admit``: an empty
    ``serviceAccountName`` becomes ``default``; ``getServiceAccount`` looks the account up (retrying
    only for ``default``, which the service-account controller creates a moment after its namespace:
    here it exists at once), and a NotFound becomes ``admission.NewForbidden(a, fmt.Errorf("error
    looking up service account %s/%s: %w", ...))``, whose message reads
    ``pods "<name>" is forbidden: error looking up service account <ns>/<sa>: serviceaccount "<sa>" not found``.
    """
    meta, spec = pod["metadata"], pod.get("spec") or {}
    sa = spec.get("serviceAccountName") or "default"
    ns = meta["namespace"]
    if (ns, sa) in accounts:
        return
    why = f'error looking up service account {ns}/{sa}: serviceaccount "{sa}" not found'
    name = meta.get("name", "")
    raise Forbidden(f'pods "{name}" is forbidden: {why}' if name else f"pods is forbidden: {why}",
                    kind="pods", name=name)


def scope_write(rt: ResourceType, old: dict[str, Any], new: dict[str, Any],
                 subresource: str | None) -> dict[str, Any]:
    """What a write to the object or one of its subresources may change: the candidate new state."""
    if subresource and (subresource not in rt.subresources or subresource not in ("status", "finalize")):
        raise NotFound(f"the server could not find the requested resource ({rt.plural}/{subresource})")
    if subresource == "status":
        return _status_write(rt, old, new)
    if subresource == "finalize":
        # namespaces/finalize changes only spec.finalizers (pkg/registry/core/namespace/storage FinalizeREST).
        finalizers = (new.get("spec") or {}).get("finalizers")
        new = clone(old)
        new.setdefault("spec", {})["finalizers"] = finalizers or []
        if not finalizers:
            new["spec"].pop("finalizers")
        return new
    if "status" in rt.subresources:
        # Main-resource writes ignore status (the strategies' PrepareForUpdate).
        if "status" in old:
            new["status"] = clone(old["status"])
        else:
            new.pop("status", None)
    if rt.plural == "namespaces":
        new["spec"] = clone(old.get("spec", {}))  # spec.finalizers change only via /finalize
    defaults.prepare_for_update(rt, new)
    return new


def _status_write(rt: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A write to ``<resource>/status``: the request's object with the old spec, as the status strategies'
    ``PrepareForUpdate`` make it (kubernetes pkg/registry/*/strategy.go): metadata changes (labels,
    annotations, finalizers) are kept; pods keep their old ``ownerReferences`` (core/pod/strategy.go
    ``podStatusStrategy``), deployments their old labels (apps/deployment/strategy.go)."""
    new = clone(new)
    if "spec" in old:
        new["spec"] = clone(old["spec"])
    else:
        new.pop("spec", None)
    meta, old_meta = new["metadata"], old["metadata"]
    kept = {"pods": ("ownerReferences",), "deployments": ("labels",)}.get(rt.plural, ())
    for field in kept:
        if field in old_meta:
            meta[field] = clone(old_meta[field])
        else:
            meta.pop(field, None)
    return new
