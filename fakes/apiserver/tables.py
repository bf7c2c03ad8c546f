"""``meta.k8s.io/v1`` Table output, what ``kubectl get`` asks for and prints.

:mod:`fakes.apiserver.server` converts a list (or one object) to a Table when the
request's ``Accept`` names ``as=Table``.  Columns follow the real server's
printers (``pkg/printers/internalversion/printers.go``) for the resources a
kubectl user looks at here; every other resource gets ``Name`` and ``Age``.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from typing import Any

Obj = dict[str, Any]

_NAME = {"name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0}
_AGE = {"name": "Age", "type": "string", "format": "", "description": "Time since creation", "priority": 0}


def _column(name: str, priority: int = 0, type_: str = "string") -> Obj:
    return {"name": name, "type": type_, "format": "", "description": name, "priority": priority}


def human_duration(seconds: float) -> str:
    """A duration the way kubectl prints ages (apimachinery ``util/duration.HumanDuration``)."""
    if seconds < -1:
        return "<invalid>"
    s = max(int(seconds), 0)
    minutes, hours, days = s // 60, s // 3600, s // 86400
    years = days // 365
    if s < 120:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d" if hours % 24 == 0 else f"{days}d{hours % 24}h"
    if years < 2:
        return f"{days}d"
    if years < 8:
        return f"{years}y" if days % 365 == 0 else f"{years}y{days % 365}d"
    return f"{years}y"


def since(timestamp: str | None, now: datetime.datetime | None = None) -> str:
    """Time since an RFC 3339 ``timestamp``, as kubectl prints it (``<unknown>`` without one)."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.datetime.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return "<unknown>"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return human_duration((now - then).total_seconds())


def age(obj: Obj, now: datetime.datetime | None = None) -> str:
    """The ``Age`` cell of ``obj``: time since ``metadata.creationTimestamp``."""
    return since(obj.get("metadata", {}).get("creationTimestamp"), now)


def pod_status(pod: Obj) -> str:
    """The ``Status`` cell of a pod: its phase, or the reason a container is waiting or
    terminated, or ``Terminating`` (a simplified ``printPod``)."""
    status = pod.get("status", {})
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            term = state["terminated"]
            reason = term.get("reason") or (
                f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode', 0)}"
            )
    if pod.get("metadata", {}).get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod_cells(pod: Obj) -> list[Any]:
    spec, status = pod.get("spec", {}), pod.get("status", {})
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for cs in statuses if cs.get("ready"))
    restarts = sum(int(cs.get("restartCount", 0)) for cs in statuses)
    return [
        f"{ready}/{len(spec.get('containers') or [])}",
        pod_status(pod),
        restarts,
        age(pod),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
    ]


def _service_cells(svc: Obj) -> list[Any]:
    spec = svc.get("spec", {})
    ports = ",".join(
        f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    return [
        spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>", "<none>", ports or "<none>",
        age(svc), selector or "<none>",
    ]


def _deployment_cells(dep: Obj) -> list[Any]:
    spec, status = dep.get("spec", {}), dep.get("status", {})
    return [
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0), status.get("availableReplicas", 0), age(dep),
    ]


def _node_cells(node: Obj) -> list[Any]:
    conditions = node.get("status", {}).get("conditions") or []
    ready = next((c.get("status") for c in conditions if c.get("type") == "Ready"), "Unknown")
    status = {"True": "Ready", "False": "NotReady"}.get(ready, "Unknown")
    if node.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix):] for k in (node.get("metadata", {}).get("labels") or {}) if k.startswith(prefix))
    version = node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
    return [status, ",".join(roles) or "<none>", age(node), version]


def _event_cells(event: Obj) -> list[Any]:
    involved = event.get("involvedObject") or {}
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    host = source.get("host") or ""
    last = event.get("lastTimestamp") or event.get("eventTime") or event.get("metadata", {}).get("creationTimestamp")
    return [
        since(last), event.get("type", ""), event.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        involved.get("fieldPath", ""), f"{component}, {host}" if host else component,
        event.get("message", ""), since(event.get("firstTimestamp") or last), event.get("count", 1),
        event.get("metadata", {}).get("name", ""),
    ]


# Events put the name last (printers.go eventColumnDefinitions): columns and cells include it.
_EVENT_COLUMNS = [
    _column("Last Seen"), _column("Type"), _column("Reason"), _column("Object"), _column("Subobject", 1),
    _column("Source", 1), _column("Message"), _column("First Seen", 1), _column("Count", 1, "integer"),
    {**_NAME, "priority": 1},
]

# plural -> (columns after Name, cells after the name)
_PRINTERS: dict[str, tuple[list[Obj], Callable[[Obj], list[Any]]]] = {
    "pods": (
        [_column("Ready"), _column("Status"), _column("Restarts", type_="integer"), _AGE,
         _column("IP", 1), _column("Node", 1)],
        _pod_cells,
    ),
    "namespaces": ([_column("Status"), _AGE], lambda ns: [ns.get("status", {}).get("phase", "Active"), age(ns)]),
    "services": (
        [_column("Type"), _column("Cluster-IP"), _column("External-IP"), _column("Port(s)"), _AGE,
         _column("Selector", 1)],
        _service_cells,
    ),
    "deployments": (
        [_column("Ready"), _column("Up-to-date", type_="integer"), _column("Available", type_="integer"), _AGE],
        _deployment_cells,
    ),
    "nodes": ([_column("Status"), _column("Roles"), _AGE, _column("Version")], _node_cells),
    "serviceaccounts": (
        [_column("Secrets", type_="integer"), _AGE], lambda sa: [len(sa.get("secrets") or []), age(sa)]
    ),
    "configmaps": ([_column("Data", type_="integer"), _AGE], lambda cm: [len(cm.get("data") or {}) + len(cm.get("binaryData") or {}), age(cm)]),
    "secrets": (
        [_column("Type"), _column("Data", type_="integer"), _AGE],
        lambda s: [s.get("type", "Opaque"), len(s.get("data") or {}), age(s)],
    ),
}


def _with_name(cells: Callable[[Obj], list[Any]]) -> Callable[[Obj], list[Any]]:
    return lambda obj: [obj.get("metadata", {}).get("name", ""), *cells(obj)]


def _partial_metadata(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def to_table(
    plural: str, objects: Iterable[Obj], *, list_metadata: Obj | None = None, include_object: str = "Metadata",
    type_meta: Obj | None = None,
) -> Obj:
    """A Table of ``objects`` of resource ``plural``.

    ``include_object`` is the request's ``includeObject`` (``None``, ``Metadata``
    — the server's default — or ``Object``): what each row's ``object`` carries.
    A full object is sent with its ``kind`` and ``apiVersion`` (``type_meta``),
    which list items leave out.
    """
    columns, cells = _PRINTERS.get(plural, ([_AGE], lambda o: [age(o)]))
    if plural == "events":
        columns, cells = _EVENT_COLUMNS, _event_cells
    else:
        columns = [_NAME, *columns]
        cells = _with_name(cells)
    rows = []
    for obj in objects:
        row: Obj = {"cells": cells(obj)}
        if include_object == "Object":
            row["object"] = {**(type_meta or {}), **obj}
        elif include_object != "None":
            row["object"] = _partial_metadata(obj)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(list_metadata or {}),
        "columnDefinitions": columns,
        "rows": rows,
    }


def wants_table(accept: str) -> bool:
    """Whether an ``Accept`` header asks for a meta.k8s.io Table (``as=Table``) first."""
    for media in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[-1].strip() for p in media.split(";")[1:]}
        if params.get("as") == "Table" and params.get("g", "meta.k8s.io") == "meta.k8s.io":
            return True
        if media.strip().startswith(("application/json", "*/*")):
            return False
    return False
