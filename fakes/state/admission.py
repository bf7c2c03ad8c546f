"""Admission and write strategies: what the API server checks and limits before the store writes.

Called by :class:`fakes.state.store.Store` on create and update, as a real API server runs its
admission plugins (``plugin/pkg/admission``) and each registry's strategy
(``PrepareForCreate``/``PrepareForUpdate``) before storage.  Pure functions of the request and
what the store holds; each raises the error the real server answers with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fakes.state import datafields, defaults, microtime
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


def read_typed(rt: ResourceType, obj: dict[str, Any]) -> None:
    """``obj``'s data maps and MicroTimes as the typed decoder reads them (``fakes.state.datafields``,
    ``fakes.state.microtime``), stored canonically in place; :class:`~fakes.state.datafields.DecodeError`
    with the decoder's words for a value it cannot read.  Each write path answers that error its own way."""
    datafields.decode_data_maps(rt, obj)
    microtime.decode_micro_times(rt, obj)


def decode_typed(rt: ResourceType, obj: dict[str, Any]) -> None:
    """A created or replaced body read as :func:`read_typed` does: a value it cannot read is the 400 of a body
    that ``cannot be handled as`` its kind."""
    try:
        read_typed(rt, obj)
    except datafields.DecodeError as error:
        raise BadRequest(f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {error}') from None


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


SERVICE_ACCOUNT_VOLUME = "kube-api-access"
"""The prefix of the token volume ServiceAccount admission adds (admission.go ``ServiceAccountVolumeName``)."""
SERVICE_ACCOUNT_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where every container finds it (admission.go ``DefaultAPITokenMountPath``)."""
TOKEN_EXPIRATION_SECONDS = 3607
"""pkg/serviceaccount ``WarnOnlyBoundTokenExpirationSeconds``: the lifetime the volume asks its token for."""


def admit_pod(pod: dict[str, Any], accounts: Mapping[tuple[str, str], dict[str, Any]],
              generate_name: Callable[[str], str]) -> None:
    """ServiceAccount admission of a pod being created, as kubernetes plugin/pkg/admission/serviceaccount/
    admission.go ``Admit`` does it; called by the store's create path before validation.

    An empty ``serviceAccountName`` becomes ``default``; ``getServiceAccount`` looks the account up (retrying
    only for ``default``, which the service-account controller creates a moment after its namespace:
    here it exists at once), and a NotFound becomes ``admission.NewForbidden(a, fmt.Errorf("error
    looking up service account %s/%s: %w", ...))``, whose message reads
    ``pods "<name>" is forbidden: error looking up service account <ns>/<sa>: serviceaccount "<sa>" not found``.
    Then, unless the pod (or else its account) sets ``automountServiceAccountToken`` false, the token volume
    and its mounts (:func:`_mount_service_account_token`); and a pod without ``imagePullSecrets`` gets its
    account's.  ``generate_name`` gives the volume's random suffix (``names.SimpleNameGenerator``).
    """
    meta, spec = pod["metadata"], pod.setdefault("spec", {})
    sa = spec.get("serviceAccountName") or "default"
    ns = meta["namespace"]
    account = accounts.get((ns, sa))
    if account is None:
        why = f'error looking up service account {ns}/{sa}: serviceaccount "{sa}" not found'
        name = meta.get("name", "")
        raise Forbidden(f'pods "{name}" is forbidden: {why}' if name else f"pods is forbidden: {why}",
                        kind="pods", name=name)
    spec["serviceAccountName"] = spec["serviceAccount"] = sa
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = account.get("automountServiceAccountToken")
    if automount is not False:  # shouldAutomount
        _mount_service_account_token(spec, generate_name)
    if not spec.get("imagePullSecrets") and account.get("imagePullSecrets"):
        spec["imagePullSecrets"] = [{"name": s.get("name", "")} for s in account["imagePullSecrets"]]


def _mount_service_account_token(spec: dict[str, Any], generate_name: Callable[[str], str]) -> None:
    """admission.go ``mountServiceAccountToken``: a volume named ``kube-api-access-`` plus a random suffix
    (or the pod's own volume of that prefix, when it has one), mounted read-only at
    :data:`SERVICE_ACCOUNT_MOUNT_PATH` in every init container and container that mounts nothing there;
    the volume (``TokenVolumeSource``) is added only when a container mounts it."""
    volumes = spec.get("volumes") or []
    own = next((v.get("name") for v in volumes if str(v.get("name", "")).startswith(SERVICE_ACCOUNT_VOLUME + "-")),
               None)
    name = own or generate_name(SERVICE_ACCOUNT_VOLUME + "-")
    mounted = False
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            mounts = container.get("volumeMounts") or []
            if any(m.get("mountPath") == SERVICE_ACCOUNT_MOUNT_PATH for m in mounts):
                continue
            container["volumeMounts"] = [*mounts, {"name": name, "readOnly": True,
                                                   "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}]
            mounted = True
    if own is None and mounted:
        spec["volumes"] = [*volumes, {"name": name, "projected": token_volume_source()}]


def token_volume_source() -> dict[str, Any]:
    """admission.go ``TokenVolumeSource``: the account's token, the cluster's CA and the pod's namespace."""
    return {
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ],
        "defaultMode": 420,
    }


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
