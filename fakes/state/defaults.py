"""Defaulting on create: the fields a real API server fills in before storing an object.

The store calls :func:`prepare_for_create` on every new object after the
namespace checks and before validation.  Values follow
``pkg/apis/core/v1/defaults.go`` (pod and service defaults),
``pkg/registry/core/pod/strategy.go`` ``PrepareForCreate`` (status reset to
Pending, QoS class), the ServiceAccount and DefaultTolerationSeconds admission
plugins, ``pkg/registry/core/service/ipallocator`` (cluster IPs from
``10.96.0.0/12``) and ``pkg/registry/core/namespace/strategy.go``.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable
from typing import Any

from gateway.cluster.resources import ResourceType

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")


def _image_pull_policy(image: str) -> str:
    # SetDefaults_Container: Always for ":latest" or an untagged image, IfNotPresent otherwise.
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_container(c: dict[str, Any]) -> None:
    if c.get("image"):
        c.setdefault("imagePullPolicy", _image_pull_policy(c["image"]))
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for port in c.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for env in c.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("fieldRef")
        if ref is not None:
            ref.setdefault("apiVersion", "v1")


def default_pod_spec(spec: dict[str, Any]) -> None:
    """Fill a pod spec's defaults in place (pods and the templates of workloads)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                _default_container(c)
    for volume in spec.get("volumes") or []:
        for source in ("configMap", "secret", "downwardAPI", "projected"):
            if isinstance(volume, dict) and isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 0o644)  # SetDefaults_*VolumeSource: 0644, written 420


def qos_class(spec: dict[str, Any]) -> str:
    """``Guaranteed``, ``Burstable`` or ``BestEffort`` (``pkg/apis/core/helper/qos/qos.go``)."""
    containers = [c for key in ("containers", "initContainers") for c in spec.get(key) or [] if isinstance(c, dict)]
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        limits = {k: v for k, v in (res.get("limits") or {}).items() if k in ("cpu", "memory")}
        requests = {k: v for k, v in (res.get("requests") or {}).items() if k in ("cpu", "memory")}
        if limits or requests:
            any_set = True
        if set(limits) != {"cpu", "memory"}:
            guaranteed = False
        for k, v in requests.items():
            if str(limits.get(k)) != str(v):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _pod(obj: dict[str, Any], ctx: Context) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    default_pod_spec(spec)
    # ServiceAccount admission: default account, and the deprecated alias kept in step.
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec["serviceAccount"] = spec["serviceAccountName"]
    # DefaultTolerationSeconds admission.
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tolerations if isinstance(t, dict)):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    # PrepareForCreate: whatever status the client sent is replaced.
    obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}


def _service(obj: dict[str, Any], ctx: Context) -> None:
    spec = obj.setdefault("spec", {})
    stype = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        if "port" in port:
            port.setdefault("targetPort", port["port"])
    if stype != "ExternalName":
        if not spec.get("clusterIP"):
            spec["clusterIP"] = ctx.allocate_cluster_ip()
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    obj["status"] = {"loadBalancer": {}}


def _secret(obj: dict[str, Any], ctx: Context) -> None:
    merge_string_data(obj)
    obj.setdefault("type", "Opaque")


def merge_string_data(obj: dict[str, Any]) -> None:
    """Fold ``stringData`` into base64 ``data`` (it is write-only: the server never returns it)."""
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _namespace(obj: dict[str, Any], ctx: Context) -> None:
    obj["spec"] = {"finalizers": ["kubernetes"]}
    obj["status"] = {"phase": "Active"}
    # NamespaceDefaultLabelName: every namespace is labelled with its own name.
    labels = obj["metadata"].setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")


def _deployment(obj: dict[str, Any], ctx: Context) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    template_spec = (spec.get("template") or {}).get("spec")
    if isinstance(template_spec, dict):
        default_pod_spec(template_spec)
    obj["status"] = {}


class Context:
    """What defaulting needs from the store: a cluster IP allocator."""

    def __init__(self, allocate_cluster_ip: Callable[[], str]) -> None:
        self.allocate_cluster_ip = allocate_cluster_ip


_BY_RESOURCE: dict[str, Callable[[dict[str, Any], Context], None]] = {
    "pods": _pod,
    "services": _service,
    "secrets": _secret,
    "namespaces": _namespace,
    "deployments": _deployment,
    "rolebindings": lambda obj, _ctx: default_binding(obj),
    "clusterrolebindings": lambda obj, _ctx: default_binding(obj),
}


_EMPTY_OMITTED = ("labels", "annotations", "finalizers", "ownerReferences")
_EVENT_ZERO_FIELDS: dict[str, Any] = {"eventTime": None, "firstTimestamp": None, "lastTimestamp": None,
                                      "reportingComponent": "", "reportingInstance": "", "source": {}}
"""Fields of a core/v1 Event without ``omitempty``: a Go server writes them out even when empty."""


def as_encoded(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Shape ``obj`` as the server's encoding of its typed object does: empty metadata maps and lists
    (``omitempty``) go, an Event's fields without ``omitempty`` are there."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for key in _EMPTY_OMITTED:
            if key in meta and meta[key] in ({}, [], None):
                del meta[key]
    if rt.plural == "events":
        for key, zero in _EVENT_ZERO_FIELDS.items():
            obj.setdefault(key, zero)


def default_binding(obj: dict[str, Any]) -> None:
    """A binding without its empty ``subjects``, and its ``roleRef.apiGroup`` and its User and Group subjects'
    ``apiGroup`` when left empty
    (``SetDefaults_RoleBinding``, ``SetDefaults_ClusterRoleBinding`` and ``SetDefaults_Subject`` in
    ``pkg/apis/rbac/v1/defaults.go``): clients such as Enterprise Gateway send ``apiGroup: ""``."""
    if obj.get("subjects") in ([], None):
        obj.pop("subjects", None)  # `json:"subjects,omitempty"`: an empty list is not encoded, nor seen as set
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = "rbac.authorization.k8s.io"
    for subject in obj.get("subjects") or []:
        if not isinstance(subject, dict) or subject.get("apiGroup"):
            continue
        if subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = "rbac.authorization.k8s.io"
        else:
            subject.pop("apiGroup", None)  # `json:"apiGroup,omitempty"` (k8s.io/api rbac/v1 Subject)


def decode_defaults(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Only the defaults a decoded request body carries (the scheme's ``SetDefaults_*`` in
    ``pkg/apis/core/v1/defaults.go``, ``apps/v1/defaults.go``), without admission and strategy: what the
    field manager sees of a write (``fakes.state.managedfields``)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for key in _EMPTY_OMITTED:
            if key in meta and meta[key] in ({}, [], None):
                del meta[key]
    spec = obj.get("spec")
    if rt.plural == "pods" and isinstance(spec, dict):
        default_pod_spec(spec)
    elif rt.plural == "services" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
    elif rt.plural == "secrets":
        merge_string_data(obj)
        obj.setdefault("type", "Opaque")
    elif rt.plural in ("rolebindings", "clusterrolebindings"):
        default_binding(obj)
    elif rt.plural == "namespaces" and isinstance(obj.get("metadata"), dict):
        name = obj["metadata"].get("name")
        if name:
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    elif rt.plural == "deployments" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault("strategy", {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        template_spec = (spec.get("template") or {}).get("spec")
        if isinstance(template_spec, dict):
            default_pod_spec(template_spec)


def prepare_for_create(rt: ResourceType, obj: dict[str, Any], ctx: Context) -> None:
    """Fill ``obj``'s defaults in place, as the server's defaulting and admission do."""
    fill = _BY_RESOURCE.get(rt.plural)
    if fill is not None:
        fill(obj, ctx)
    as_encoded(rt, obj)


def prepare_for_update(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Defaults that also apply on update (a replaced pod spec keeps its defaults, a namespace its name label)."""
    as_encoded(rt, obj)
    if rt.plural in ("namespaces", "rolebindings", "clusterrolebindings"):
        decode_defaults(rt, obj)  # their SetDefaults_* run on every decoded object
    if rt.plural == "secrets":
        merge_string_data(obj)
        obj.setdefault("type", "Opaque")  # SetDefaults_Secret, on every decoded body
    elif rt.plural == "pods" and isinstance(obj.get("spec"), dict):
        default_pod_spec(obj["spec"])
        spec = obj["spec"]
        if "serviceAccountName" in spec:
            spec["serviceAccount"] = spec["serviceAccountName"]


class ClusterIPs:
    """Hands out service cluster IPs from ``10.96.0.0/12`` (``10.96.0.1`` is the ``kubernetes`` service's)."""

    def __init__(self) -> None:
        self._hosts = SERVICE_CIDR.hosts()
        next(self._hosts)  # 10.96.0.1

    def allocate(self) -> str:
        return str(next(self._hosts))
