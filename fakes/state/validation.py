"""Object validation with the real API server's field paths and messages.

The store calls :func:`validate_create` before storing a new object and
:func:`validate_update` before replacing one; both raise :class:`Invalid`
(422) whose message and causes read as the real server's.  Rules and texts
follow ``k8s.io/apimachinery/pkg/util/validation`` (name formats),
``k8s.io/apimachinery/pkg/api/validation/objectmeta.go`` (metadata) and
``pkg/apis/core/validation/validation.go`` (pods, services, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fakes.state import datafields
from fakes.state.selectors import label_key_errors, label_value_errors
from gateway.cluster.interface import Cause, Invalid
from gateway.cluster.resources import ResourceType

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
ANNOTATIONS_MAX_BYTES = 256 * 1024

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


@dataclass(frozen=True)
class FieldError:
    """One field error, rendered like ``field.Error`` (``metadata.name: Invalid value: "x": why``)."""

    type: str  # FieldValueInvalid, FieldValueRequired, FieldValueForbidden, FieldValueTooLong, FieldValueNotSupported, ...
    field: str
    value: Any = None
    detail: str = ""

    def body(self) -> str:
        if self.type == "FieldValueRequired":
            head = "Required value"
        elif self.type == "FieldValueForbidden":
            head = "Forbidden"
        elif self.type == "FieldValueTooLong":
            head = "Too long"
        elif self.type == "FieldValueDuplicate":
            head = f"Duplicate value: {_render(self.value)}"
        elif self.type == "FieldValueNotSupported":
            head = f"Unsupported value: {_render(self.value)}"
        elif self.type == "FieldValueNotFound":
            head = f"Not found: {_render(self.value)}"
        else:
            head = f"Invalid value: {_render(self.value)}"
        return f"{head}: {self.detail}" if self.detail else head

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


class Literal(str):
    """A value rendered as is in a field error (a Go struct), not as a quoted string."""


def _render(value: Any) -> str:
    if isinstance(value, Literal):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def invalid(rt: ResourceType, name: str, errors: list[FieldError]) -> Invalid:
    """The 422 for ``errors``: ``Pod "x" is invalid: <err>`` or ``[<err>, <err>]`` for several
    (``errors.NewInvalid`` with an aggregate, ``k8s.io/apimachinery/pkg/api/errors/errors.go``)."""
    qualified_kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    agg = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    return Invalid(
        f'{qualified_kind} "{name}" is invalid: {agg}',
        kind=rt.kind,
        name=name,
        group=rt.group,
        causes=[Cause(reason=e.type, message=e.body(), field=e.field) for e in errors],
    )


CONDITIONAL_UPDATES_ONLY = frozenset({"leases", "poddisruptionbudgets"})
"""Kinds whose strategy's ``AllowUnconditionalUpdate`` is false (``pkg/registry/coordination/lease``,
``policy/poddisruptionbudget`` ``strategy.go``): a PUT must carry the ``resourceVersion`` it replaces."""


def unconditional_update_refused(rt: ResourceType, name: str) -> Invalid:
    """The 422 for a PUT without ``metadata.resourceVersion`` to a kind in :data:`CONDITIONAL_UPDATES_ONLY`.

    As ``registry/generic/registry/store.go`` ``Update`` builds it, its kind is the resource
    (``leases.coordination.k8s.io "a" is invalid``, ``details.kind`` ``leases``).
    """
    error = FieldError("FieldValueInvalid", "metadata.resourceVersion", 0, "must be specified for an update")
    qualified = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
    return Invalid(f'{qualified} "{name}" is invalid: {error}', kind=rt.plural, name=name, group=rt.group,
                   causes=[Cause(reason=error.type, message=error.body(), field=error.field)])


# ---------------------------------------------------------------- name formats


def dns1123_label_errors(value: str) -> list[str]:
    """``IsDNS1123Label``: at most 63 characters of ``[a-z0-9-]``, alphanumeric at both ends.

    As apimachinery v0.37 ``pkg/util/validation/validation.go`` ``IsDNS1123Label``: a value that
    would be a valid subdomain fails only for its dots, and says so.
    """
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(f"must be no more than {DNS1123_LABEL_MAX} characters")
    if not _LABEL.match(value):
        errs.append("must not contain dots" if _SUBDOMAIN.match(value) else LABEL_MSG)
    return errs


def dns1123_subdomain_errors(value: str) -> list[str]:
    """``IsDNS1123Subdomain``: at most 253 characters, dot-separated labels."""
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters")
    if not _SUBDOMAIN.match(value):
        errs.append(SUBDOMAIN_MSG)
    return errs


def dns1035_label_errors(value: str) -> list[str]:
    """``IsDNS1035Label``: like a DNS-1123 label, but starting with a letter (service names)."""
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(f"must be no more than {DNS1123_LABEL_MAX} characters")
    if not _DNS1035.match(value):
        errs.append(DNS1035_MSG)
    return errs


def path_segment_errors(value: str) -> list[str]:
    """``path.IsValidPathSegmentName``: RBAC objects may be named ``system:controller:x``."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    for bad in ("/", "%"):
        if bad in value:
            return [f"may not contain '{bad}'"]
    return []


# Which name rule each resource uses (the ValidateXName passed to ValidateObjectMeta).  Services: a
# DNS-1123 label since RelaxedServiceNameValidation went GA in 1.37 (kubernetes pkg/features/kube_features.go;
# pkg/apis/core/validation/validation.go ValidateService picks NameIsDNSLabel), so "1-abc" is a valid name.
_NAME_RULES: dict[str, Callable[[str], list[str]]] = {
    "namespaces": dns1123_label_errors,
    "services": dns1123_label_errors,
    "roles": path_segment_errors,
    "clusterroles": path_segment_errors,
    "rolebindings": path_segment_errors,
    "clusterrolebindings": path_segment_errors,
    # core/v1 events pass only the legacy event checks, then the generic ones of rest.BeforeCreate
    # (ValidateObjectMetaAccessor with path.ValidatePathSegmentName): pkg/apis/core/validation/events.go.
    "events": path_segment_errors,
}


def name_errors(resource: str, name: str) -> list[str]:
    """Why ``name`` is not a valid name for ``resource``; empty when it is."""
    return _NAME_RULES.get(resource, dns1123_subdomain_errors)(name)


# ---------------------------------------------------------------- metadata


def _meta_errors(rt: ResourceType, obj: Mapping[str, Any]) -> list[FieldError]:
    meta = obj.get("metadata") or {}
    errs: list[FieldError] = []
    name = meta.get("name") or ""
    if not name:
        if not meta.get("generateName"):
            errs.append(FieldError("FieldValueRequired", "metadata.name", detail="name or generateName is required"))
    else:
        for why in name_errors(rt.plural, name):
            errs.append(FieldError("FieldValueInvalid", "metadata.name", name, why))
    if rt.namespaced and not meta.get("namespace"):
        errs.append(FieldError("FieldValueRequired", "metadata.namespace"))
    labels = meta.get("labels") or {}
    for key, value in labels.items():
        for why in label_key_errors(str(key)):
            errs.append(FieldError("FieldValueInvalid", "metadata.labels", key, why))
        if not isinstance(value, str):
            errs.append(FieldError("FieldValueInvalid", f"metadata.labels[{key}]", value, "must be a string"))
            continue
        for why in label_value_errors(value):
            errs.append(FieldError("FieldValueInvalid", "metadata.labels", value, why))
    annotations = meta.get("annotations") or {}
    total = 0
    for key, value in annotations.items():
        for why in label_key_errors(str(key).lower()):
            errs.append(FieldError("FieldValueInvalid", "metadata.annotations", key, why))
        total += len(str(key)) + len(str(value))
    if total > ANNOTATIONS_MAX_BYTES:
        errs.append(FieldError("FieldValueTooLong", "metadata.annotations",
                               detail=f"must have at most {ANNOTATIONS_MAX_BYTES} bytes"))
    # objectmeta.go validateOwnerReference: the field path carries no index.
    for ref in meta.get("ownerReferences") or []:
        for key, what in (("apiVersion", "version"), ("kind", "kind"), ("name", "name"), ("uid", "uid")):
            if not isinstance(ref, Mapping) or not ref.get(key):
                errs.append(FieldError("FieldValueInvalid", f"metadata.ownerReferences.{key}",
                                       (ref.get(key) if isinstance(ref, Mapping) else None) or "",
                                       f"{what} must not be empty"))
    return errs


# ---------------------------------------------------------------- per kind


def _container_errors(path: str, containers: Any, seen: set[str], volumes: set[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, c in enumerate(containers or []):
        name = c.get("name") or ""
        if not name:
            errs.append(FieldError("FieldValueRequired", f"{path}[{i}].name"))
        else:
            for why in dns1123_label_errors(name):
                errs.append(FieldError("FieldValueInvalid", f"{path}[{i}].name", name, why))
            if name in seen:
                errs.append(FieldError("FieldValueDuplicate", f"{path}[{i}].name", name))
            seen.add(name)
        if not c.get("image"):
            errs.append(FieldError("FieldValueRequired", f"{path}[{i}].image"))
        for j, port in enumerate(c.get("ports") or []):
            cp = port.get("containerPort")
            if not isinstance(cp, int) or not 1 <= cp <= 65535:
                errs.append(FieldError("FieldValueInvalid", f"{path}[{i}].ports[{j}].containerPort", cp,
                                       "must be between 1 and 65535, inclusive"))
        for j, env in enumerate(c.get("env") or []):
            if not env.get("name"):
                errs.append(FieldError("FieldValueRequired", f"{path}[{i}].env[{j}].name"))
        for j, mount in enumerate(c.get("volumeMounts") or []):
            name = mount.get("name") if isinstance(mount, Mapping) else None
            if not name:
                errs.append(FieldError("FieldValueRequired", f"{path}[{i}].volumeMounts[{j}].name"))
            elif name not in volumes:  # ValidateVolumeMounts: a mount names one of the pod's volumes
                errs.append(FieldError("FieldValueNotFound", f"{path}[{i}].volumeMounts[{j}].name", name))
    return errs


def _volume_names(path: str, volumes: Any, errs: list[FieldError]) -> set[str]:
    """The pod's volume names (``ValidateVolumes``: each given once, a duplicate is an error)."""
    names: set[str] = set()
    for i, volume in enumerate(volumes or []):
        name = volume.get("name") if isinstance(volume, Mapping) else None
        if not name:
            errs.append(FieldError("FieldValueRequired", f"{path}[{i}].name"))
        elif name in names:
            errs.append(FieldError("FieldValueDuplicate", f"{path}[{i}].name", name))
        else:
            names.add(name)
    return names


def _pod_spec_errors(spec: Any, path: str) -> list[FieldError]:
    if not isinstance(spec, Mapping):
        return [FieldError("FieldValueRequired", f"{path}.containers")]
    errs: list[FieldError] = []
    seen: set[str] = set()
    volumes = _volume_names(f"{path}.volumes", spec.get("volumes"), errs)
    if not spec.get("containers"):
        errs.append(FieldError("FieldValueRequired", f"{path}.containers"))
    errs += _container_errors(f"{path}.containers", spec.get("containers"), seen, volumes)
    errs += _container_errors(f"{path}.initContainers", spec.get("initContainers"), seen, volumes)
    policy = spec.get("restartPolicy")
    if policy not in (None, "Always", "OnFailure", "Never"):
        errs.append(FieldError("FieldValueNotSupported", f"{path}.restartPolicy", policy,
                               'supported values: "Always", "OnFailure", "Never"'))
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or grace < 0):
        errs.append(FieldError("FieldValueInvalid", f"{path}.terminationGracePeriodSeconds", grace,
                               "must be greater than or equal to 0"))
    return errs


def _service_errors(obj: Mapping[str, Any]) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs: list[FieldError] = []
    stype = spec.get("type", "ClusterIP")
    if stype != "ExternalName" and not spec.get("ports") and spec.get("clusterIP") != "None":
        errs.append(FieldError("FieldValueRequired", "spec.ports"))
    for i, port in enumerate(spec.get("ports") or []):
        p = port.get("port")
        if not isinstance(p, int) or not 1 <= p <= 65535:
            errs.append(FieldError("FieldValueInvalid", f"spec.ports[{i}].port", p,
                                   "must be between 1 and 65535, inclusive"))
        if len(spec.get("ports") or []) > 1 and not port.get("name"):
            errs.append(FieldError("FieldValueRequired", f"spec.ports[{i}].name"))
    return errs


def _role_errors(obj: Mapping[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, rule in enumerate(obj.get("rules") or []):
        if not rule.get("verbs"):
            errs.append(FieldError("FieldValueRequired", f"rules[{i}].verbs", detail="verbs must contain at least one value"))
        if not rule.get("nonResourceURLs") and not rule.get("resources"):
            errs.append(FieldError("FieldValueRequired", f"rules[{i}].resources",
                                   detail="resource rules must supply at least one resource"))
        if rule.get("resources") and rule.get("apiGroups") is None:
            errs.append(FieldError("FieldValueRequired", f"rules[{i}].apiGroups",
                                   detail="resource rules must supply at least one api group"))
    return errs


def _binding_errors(rt: ResourceType, obj: Mapping[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    ref = obj.get("roleRef") or {}
    if ref.get("apiGroup", "") != "rbac.authorization.k8s.io":
        errs.append(FieldError("FieldValueNotSupported", "roleRef.apiGroup", ref.get("apiGroup", ""),
                               'supported values: "rbac.authorization.k8s.io"'))
    allowed = ("Role", "ClusterRole") if rt.plural == "rolebindings" else ("ClusterRole",)
    if ref.get("kind") not in allowed:
        errs.append(FieldError("FieldValueNotSupported", "roleRef.kind", ref.get("kind", ""),
                               "supported values: " + ", ".join(f'"{k}"' for k in allowed)))
    if not ref.get("name"):
        errs.append(FieldError("FieldValueRequired", "roleRef.name"))
    for i, subj in enumerate(obj.get("subjects") or []):
        kind = subj.get("kind")
        if kind not in ("User", "Group", "ServiceAccount"):
            errs.append(FieldError("FieldValueNotSupported", f"subjects[{i}].kind", kind or "",
                                   'supported values: "ServiceAccount", "User", "Group"'))
        if not subj.get("name"):
            errs.append(FieldError("FieldValueRequired", f"subjects[{i}].name"))
        if kind == "ServiceAccount" and not subj.get("namespace") and rt.plural == "clusterrolebindings":
            errs.append(FieldError("FieldValueRequired", f"subjects[{i}].namespace"))
    return errs


MAX_DATA_BYTES = 1024 * 1024
"""``core.MaxSecretSize``: what a Secret's or a ConfigMap's data may hold in all."""
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def _data_errors(rt: ResourceType, obj: Mapping[str, Any]) -> list[FieldError]:
    """``ValidateSecret`` / ``ValidateConfigMap`` (pkg/apis/core/validation): every key a config key, no
    ConfigMap key in both ``data`` and ``binaryData``, and at most :data:`MAX_DATA_BYTES` in all (the
    ConfigMap's error names the object's root, which Go's ``field.NewPath("")`` renders ``[]``)."""
    errs = []
    sections = ("data", "binaryData") if rt.plural == "configmaps" else ("data",)
    for section in sections:
        for key in obj.get(section) or {}:
            if not _CONFIG_KEY.match(key) or len(key) > DNS1123_SUBDOMAIN_MAX or key in (".", ".."):
                errs.append(FieldError("FieldValueInvalid", f"{section}[{key}]", key,
                                       "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                                       "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
                                       "is '[-._a-zA-Z0-9]+')"))
            if section == "data" and key in (obj.get("binaryData") or {}):
                errs.append(FieldError("FieldValueInvalid", f"data[{key}]", key,
                                       "duplicate of key present in binaryData"))
    if datafields.data_size(rt, dict(obj)) > MAX_DATA_BYTES:
        errs.append(FieldError("FieldValueTooLong", "data" if rt.plural == "secrets" else "[]",
                               detail=f"may not be more than {MAX_DATA_BYTES} bytes"))
    return errs


def _kind_errors(rt: ResourceType, obj: Mapping[str, Any]) -> list[FieldError]:
    if rt.plural == "pods":
        return _pod_spec_errors(obj.get("spec"), "spec")
    if rt.plural == "deployments":
        spec = obj.get("spec") or {}
        errs = _pod_spec_errors((spec.get("template") or {}).get("spec"), "spec.template.spec")
        if not spec.get("selector"):
            errs.append(FieldError("FieldValueRequired", "spec.selector"))
        return errs
    if rt.plural == "services":
        return _service_errors(obj)
    if rt.plural in ("roles", "clusterroles"):
        return _role_errors(obj)
    if rt.plural in ("rolebindings", "clusterrolebindings"):
        return _binding_errors(rt, obj)
    if rt.plural in ("configmaps", "secrets"):
        return _data_errors(rt, obj)
    if rt.plural == "leases":
        return _lease_errors(obj)
    if rt.plural == "events":
        return _event_errors(obj)
    return []


def _event_errors(obj: Mapping[str, Any]) -> list[FieldError]:
    """``legacyValidateEvent`` (pkg/apis/core/validation/events.go), the namespace rule: a core/v1 event's
    ``involvedObject.namespace`` is its own namespace (or, for an object of no namespace, the event's is empty
    or ``default``; with an ``eventTime``, ``default`` or ``kube-system``).  The checks of an event with an
    ``eventTime`` on its reporting fields are not made here (docs/known-differences.md)."""
    namespace = (obj.get("metadata") or {}).get("namespace") or ""
    involved = obj.get("involvedObject")
    theirs = (involved.get("namespace") if isinstance(involved, Mapping) else None) or ""
    if not obj.get("eventTime"):
        matches = namespace in ("", "default") if not theirs else namespace == theirs
    else:
        matches = bool(theirs) or namespace in ("default", "kube-system")
    if matches:
        return []
    return [FieldError("FieldValueInvalid", "involvedObject.namespace", theirs, "does not match event.namespace")]


def _lease_errors(obj: Mapping[str, Any]) -> list[FieldError]:
    """pkg/apis/coordination/validation ValidateLeaseSpec: durations and transitions must be positive."""
    spec = obj.get("spec") or {}
    errs = []
    duration = spec.get("leaseDurationSeconds")
    if isinstance(duration, int) and duration <= 0:
        errs.append(FieldError("FieldValueInvalid", "spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if isinstance(transitions, int) and transitions < 0:
        errs.append(FieldError("FieldValueInvalid", "spec.leaseTransitions", transitions,
                               "must be greater than or equal to 0"))
    return errs


def validate_create(rt: ResourceType, obj: Mapping[str, Any]) -> None:
    """Raise :class:`Invalid` when ``obj`` (already defaulted, name generated) may not be created."""
    errs = _meta_errors(rt, obj) + _kind_errors(rt, obj)
    if errs:
        raise invalid(rt, (obj.get("metadata") or {}).get("name", ""), errs)


# ---------------------------------------------------------------- updates

_POD_MUTABLE_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def _pod_spec_without_mutable(spec: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(spec)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        out.pop(key, None)
    for key in ("containers", "initContainers"):
        if key in out:
            out[key] = [{k: v for k, v in c.items() if k != "image"} for c in out[key] or []]
    return out


def validate_update(rt: ResourceType, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Raise :class:`Invalid` when replacing ``old`` by ``new`` is refused (``ValidateObjectMetaUpdate``
    and the kind's update rules: pod spec, binding roleRef, a secret's type, immutable configmaps/secrets)."""
    errs = _meta_errors(rt, new) + _kind_errors(rt, new)
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    name = old_meta.get("name", "")
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        if new_meta.get(key) != old_meta.get(key):
            errs.append(FieldError("FieldValueInvalid", f"metadata.{key}", new_meta.get(key),
                                   "field is immutable"))
    if rt.plural == "pods":
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        # ValidateContainerUpdates: a changed number of containers is said first, and alone.
        resized = next((key for key in ("containers", "initContainers")
                        if len(old_spec.get(key) or []) != len(new_spec.get(key) or [])), None)
        if resized is not None:
            errs.append(FieldError("FieldValueForbidden", f"spec.{resized}",
                                   detail="pod updates may not add or remove containers"))
        elif _pod_spec_without_mutable(old_spec) != _pod_spec_without_mutable(new_spec):
            errs.append(FieldError("FieldValueForbidden", "spec", detail=_POD_MUTABLE_MSG))
    elif rt.plural in ("rolebindings", "clusterrolebindings"):
        if old.get("roleRef") != new.get("roleRef"):
            # pkg/apis/rbac/validation/validation.go ValidateRoleBindingUpdate: ValidateImmutableField.
            errs.append(FieldError("FieldValueInvalid", "roleRef", _go_struct(new.get("roleRef") or {}),
                                   "field is immutable"))
    elif rt.plural in ("configmaps", "secrets"):
        _immutable_field_errors(rt, old, new, errs)
    if errs:
        raise invalid(rt, name, errs)


def _immutable_field_errors(rt: ResourceType, old: Mapping[str, Any], new: Mapping[str, Any],
                           errs: list[FieldError]) -> None:
    """``ValidateSecretUpdate`` / ``ValidateConfigMapUpdate``: a secret's type never changes; nor the data of
    one marked ``immutable``."""
    if rt.plural == "secrets" and new.get("type") != old.get("type"):
        errs.append(FieldError("FieldValueInvalid", "type", new.get("type"), "field is immutable"))
    if old.get("immutable"):
        if not new.get("immutable"):
            errs.append(FieldError("FieldValueForbidden", "immutable", detail="field is immutable when `immutable` is set"))
        for key in ("data", "binaryData"):
            if old.get(key) != new.get(key):
                errs.append(FieldError("FieldValueForbidden", key, detail="field is immutable when `immutable` is set"))


def _go_struct(ref: Mapping[str, Any]) -> Literal:
    """An ``rbac.RoleRef`` as field errors render a struct value since 1.37: JSON of its Go field names."""
    return Literal(json.dumps({"APIGroup": ref.get("apiGroup", ""), "Kind": ref.get("kind", ""),
                               "Name": ref.get("name", "")}, separators=(",", ":")))
