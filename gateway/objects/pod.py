"""The kernel pod (and its companion objects) built from a rendered kernel-pod template.

The provisioner calls :func:`kernel_objects` at every launch and restart with
the parsed template (``gateway.objects.template.parse_template``) and what it
decided about the kernel.  The template is rendered with the seed's variables,
then the gateway forces what it relies on, whatever the template says:

* metadata: the pod's name (:func:`kernel_resource_name` unless given), its
  namespace, the labels ``app=enterprise-gateway``, ``component=kernel``,
  ``kernel_id=<id>`` and the annotation
  ``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`` (a kernel holds
  state that an eviction would lose);
* spec: ``restartPolicy: Never`` (the gateway restarts kernels itself),
  ``serviceAccountName``, and a pod ``securityContext`` running as
  ``KERNEL_UID``/``KERNEL_GID`` (default 1000/100; ids in ``prohibited_uids``/
  ``prohibited_gids`` refused with :class:`ForbiddenKernelRequest`);
* the first container: its name (the pod's), its image when the template left
  none, requests/limits from ``KERNEL_CPUS``/``KERNEL_MEMORY``/``KERNEL_GPUS``
  (``gateway.objects.quantities``), and its ``env``.

The container env is the template's entries plus, as plain name/value data,
the kernel env the caller passes (``KERNEL_*`` and allowed client variables;
never the gateway's own ``os.environ``), the kernel's identity (``KERNEL_ID``,
``KERNEL_USERNAME``, ``KERNEL_NAMESPACE``, ``KERNEL_SERVICE_ACCOUNT_NAME``,
``KERNEL_UID``, ``KERNEL_GID``) and the launcher's own variables (response
address, public key, port range...), later ones winning; an entry of the
template with the same name is replaced in place.  Values the caller passes are
stored with every ``$`` doubled, so Kubernetes' ``$(VAR)`` expansion
(k8s.io/kubernetes third_party/forked/golang/expansion) hands the container
exactly the text given; the template's own entries keep their expansion.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.objects.errors import ForbiddenKernelRequest, InvalidKernelRequest, TemplateError
from gateway.objects.labels import is_label_key, kernel_labels, with_labels
from gateway.objects.names import is_dns1123_label, is_dns1123_subdomain, kernel_resource_name, safe_label
from gateway.objects.quantities import container_resources
from gateway.objects.template import POD_KIND, render

DEFAULT_UID = 1000
DEFAULT_GID = 100
SAFE_TO_EVICT_ANNOTATION = "cluster-autoscaler.kubernetes.io/safe-to-evict"
_MAX_ID = 2147483647  # runAsUser/runAsGroup/fsGroup upper bound (pkg/apis/core/validation)
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")  # validation.IsEnvVarName
_DNS1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?")  # Service names (ValidateServiceName)


@dataclass(frozen=True)
class KernelObjects:
    """What to create for one kernel launch: the pod, then its companions (Service, ConfigMap, ...).

    Companions need an owner reference to the created pod: pass them through
    :func:`owned_by` with the pod the API server returned.
    """

    pod: dict[str, Any]
    companions: tuple[dict[str, Any], ...] = ()


def kernel_objects(
    template_objects: Iterable[Mapping[str, Any]],
    *,
    kernel_id: str,
    username: str,
    namespace: str,
    service_account: str,
    image: str,
    env: Mapping[str, str],
    launcher_env: Mapping[str, str] | None = None,
    language: str = "python",
    response_address: str = "",
    connection_filename: str = "",
    spark_context_initialization_mode: str = "none",
    prohibited_uids: Collection[int] = (0,),
    prohibited_gids: Collection[int] = (0,),
    name: str | None = None,
) -> KernelObjects:
    """Render ``template_objects`` for one kernel and complete the result (see the module docstring).

    Raises :class:`InvalidKernelRequest` (or its 403 subclass
    :class:`ForbiddenKernelRequest`) for client values that cannot make a
    valid pod, :class:`TemplateError` for a template that cannot be
    completed, and ``ValueError`` for inconsistent arguments from the caller.
    No argument is modified.
    """
    name = kernel_resource_name(username, kernel_id) if name is None else name
    if not is_dns1123_label(name):
        raise ValueError(f"pod name {name!r} is not a DNS-1123 label")
    if not is_dns1123_label(namespace):
        raise ValueError(f"namespace {namespace!r} is not a DNS-1123 label")
    if not is_dns1123_subdomain(service_account):
        raise InvalidKernelRequest(f"service account name {service_account!r} is not a DNS-1123 subdomain")
    labels = kernel_labels(kernel_id)
    client_env = _checked_env(env, InvalidKernelRequest)
    launcher = _checked_env(launcher_env or {}, ValueError)
    uid = _kernel_id_number(client_env, "KERNEL_UID", DEFAULT_UID, prohibited_uids, "EG_PROHIBITED_UIDS")
    gid = _kernel_id_number(client_env, "KERNEL_GID", DEFAULT_GID, prohibited_gids, "EG_PROHIBITED_GIDS")
    identity = {
        "KERNEL_ID": kernel_id,
        "KERNEL_USERNAME": username,
        "KERNEL_NAMESPACE": namespace,
        "KERNEL_SERVICE_ACCOUNT_NAME": service_account,
        "KERNEL_UID": str(uid),
        "KERNEL_GID": str(gid),
    }
    for key, value in launcher.items():
        if key in identity and identity[key] != value:
            raise ValueError(f"launcher env {key}={value!r} contradicts the kernel's {identity[key]!r}")
    variables = _template_variables(
        {**client_env, **identity},
        kernel_username=username,
        kernel_id=kernel_id,
        namespace=namespace,
        service_account=service_account,
        response_address=response_address,
        connection_filename=connection_filename,
        language=language,
        spark_context_initialization_mode=spark_context_initialization_mode,
        docker_image=image,
    )
    rendered = render(list(template_objects), variables)
    pods = [obj for obj in rendered if obj.get("kind") == POD_KIND]
    if len(pods) != 1:
        raise TemplateError(f"a kernel template must hold exactly one Pod, found {len(pods)}")
    pod = pods[0]
    _complete_pod(pod, name=name, namespace=namespace, labels=labels, service_account=service_account, image=image)
    container = pod["spec"]["containers"][0]
    container["env"] = _merged_env(container.get("env"), {**client_env, **identity, **launcher})
    resources = container_resources(client_env, _mapping(container.get("resources"), "resources"))
    if resources or "resources" in container:
        container["resources"] = resources
    pod["spec"]["securityContext"] = {
        **_mapping(pod["spec"].get("securityContext"), "securityContext"),
        "runAsUser": uid,
        "runAsGroup": gid,
        "fsGroup": gid,
        "runAsNonRoot": uid != 0,
    }
    companions = tuple(
        _complete_companion(obj, pod_name=name, namespace=namespace, labels=labels)
        for obj in rendered
        if obj is not pod
    )
    return KernelObjects(pod=pod, companions=companions)


def kernel_pod(template_objects: Iterable[Mapping[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """The kernel pod alone: :func:`kernel_objects` for templates without companions (same arguments)."""
    return kernel_objects(template_objects, **kwargs).pod


def owned_by(pod: Mapping[str, Any], objects: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``objects`` owned by the created ``pod``, so deleting the pod deletes them.

    Called by the provisioner after the API server returned the pod (the owner
    reference needs its ``uid``) and before it creates the companions.  Owner
    and owned must share a namespace (the garbage collector ignores
    cross-namespace owners).  No ``blockOwnerDeletion``: setting it needs
    extra permissions on the pod (OwnerReferencesPermissionEnforcement).
    """
    meta = pod.get("metadata") or {}
    uid, pod_name, pod_namespace = meta.get("uid"), meta.get("name"), meta.get("namespace")
    if not uid or not pod_name:
        raise ValueError("the pod has no uid or name yet: pass the object the API server returned")
    reference = {"apiVersion": "v1", "kind": POD_KIND, "name": pod_name, "uid": uid}
    owned = []
    for obj in objects:
        obj_copy = copy.deepcopy(dict(obj))
        obj_meta = obj_copy.setdefault("metadata", {})
        if obj_meta.get("namespace") != pod_namespace:
            raise ValueError(f"{obj_copy.get('kind')} {obj_meta.get('name')!r} is not in the pod's namespace")
        others = [ref for ref in obj_meta.get("ownerReferences") or [] if ref.get("uid") != uid]
        obj_meta["ownerReferences"] = [*others, reference]
        owned.append(obj_copy)
    return owned


# --------------------------------------------------------------------------- pod parts


def _complete_pod(
    pod: dict[str, Any], *, name: str, namespace: str, labels: dict[str, str], service_account: str, image: str
) -> None:
    """Force the gateway's metadata and spec fields onto ``pod`` (a freshly rendered object we own)."""
    meta = dict(_mapping(pod.get("metadata"), "metadata"))
    meta["name"] = name
    meta["namespace"] = namespace
    meta["labels"] = with_labels(_mapping(meta.get("labels"), "labels"), labels)
    meta["annotations"] = {**_annotations(meta.get("annotations")), SAFE_TO_EVICT_ANNOTATION: "false"}
    pod["metadata"] = meta
    spec = dict(_mapping(pod.get("spec"), "spec"))
    spec["restartPolicy"] = "Never"
    spec["serviceAccountName"] = service_account
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers or not all(isinstance(c, dict) for c in containers):
        raise TemplateError("the Pod's spec.containers must be a non-empty list of containers")
    first = dict(containers[0])
    first["name"] = name
    if not first.get("image"):
        first["image"] = image
    spec["containers"] = [first, *containers[1:]]
    pod["spec"] = spec


def _merged_env(template_env: Any, overrides: Mapping[str, str]) -> list[dict[str, str]]:
    """The template's env entries with ``overrides`` replacing same-named ones in place, the rest appended."""
    if template_env is None:
        template_env = []
    if not isinstance(template_env, list):
        raise TemplateError("a container's env must be a list of {name, value} entries")
    merged: list[dict[str, Any]] = []
    placed: set[str] = set()
    for entry in template_env:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise TemplateError(f"env entry {entry!r} has no name")
        entry_name = entry["name"]
        if entry_name in overrides:
            if entry_name not in placed:
                merged.append({"name": entry_name, "value": _literal(overrides[entry_name])})
                placed.add(entry_name)
            continue
        if "value" in entry and not isinstance(entry["value"], str):
            entry = {**entry, "value": _yaml_text(entry["value"])}
        merged.append(entry)
    merged.extend(
        {"name": key, "value": _literal(value)} for key, value in overrides.items() if key not in placed
    )
    return merged


def _literal(value: str) -> str:
    """``value`` escaped so that Kubernetes' ``$(VAR)`` expansion yields it unchanged (``$$`` reads as ``$``)."""
    return value.replace("$", "$$")


def _annotations(annotations: Any) -> dict[str, str]:
    result = {}
    for key, value in _mapping(annotations, "annotations").items():
        if not is_label_key(key):
            raise TemplateError(f"invalid annotation key {key!r}")
        result[key] = value if isinstance(value, str) else _yaml_text(value)
    return result


def _complete_companion(obj: dict[str, Any], *, pod_name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """A Service/ConfigMap/Secret/PVC of the template placed in the kernel's namespace with the kernel labels."""
    meta = dict(_mapping(obj.get("metadata"), "metadata"))
    meta["name"] = _companion_name(obj["kind"], meta.get("name"), pod_name)
    meta["namespace"] = namespace
    meta["labels"] = with_labels(_mapping(meta.get("labels"), "labels"), labels)
    if "annotations" in meta:
        meta["annotations"] = _annotations(meta["annotations"])
    return {**obj, "metadata": meta}


def _companion_name(kind: str, name: Any, pod_name: str) -> str:
    """The template's name for a companion when Kubernetes accepts it for ``kind``, else a safe one."""
    if name is None or name == "":
        name = pod_name
    name = name if isinstance(name, str) else _yaml_text(name)
    if kind == "Service":
        if len(name) <= 63 and _DNS1035_LABEL.fullmatch(name):
            return name
        return safe_label("kernel", name)  # starts with a letter, as Service names must
    return name if is_dns1123_subdomain(name) else safe_label(name)


# --------------------------------------------------------------------------- client values


def _checked_env(env: Mapping[str, Any], error: type[Exception]) -> dict[str, str]:
    checked = {}
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise error(f"{key!r} is not a valid environment variable name")
        if not isinstance(value, str):
            raise error(f"environment variable {key} must be a string, not {type(value).__name__}")
        if "\x00" in value:
            raise error(f"environment variable {key} contains a NUL character")
        checked[key] = value
    return checked


def _kernel_id_number(env: Mapping[str, str], var: str, default: int, prohibited: Collection[int], setting: str) -> int:
    text = env.get(var) or ""
    if text == "":
        number = default
    elif re.fullmatch(r"[0-9]{1,10}", text) and int(text) <= _MAX_ID:
        number = int(text)
    else:
        raise InvalidKernelRequest(f"{var}={text[:20]!r} must be a whole number between 0 and {_MAX_ID}")
    if number in prohibited:
        raise ForbiddenKernelRequest(f"{var} {number} is prohibited by {setting}")
    return number


def _template_variables(kernel_env: Mapping[str, str], **seed_variables: str) -> dict[str, str]:
    """The seed's variables, plus each ``KERNEL_*`` of the kernel env lowercased (``$kernel_working_dir``).

    EG's later templates offer ``KERNEL_*`` this way too; the seed's variables
    win over a client's ``KERNEL_USERNAME`` and the like.
    """
    from_env = {
        key.lower(): value
        for key, value in kernel_env.items()
        if key.startswith("KERNEL_") and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key)
    }
    return {**from_env, **seed_variables}


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TemplateError(f"{what} must be a mapping, not {type(value).__name__}")
    return value


def _yaml_text(value: Any) -> str:
    """How YAML would write a scalar the template left unquoted (``true``, ``8877``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (int, float, str)):
        return str(value)
    raise TemplateError(f"{value!r} must be a string")
