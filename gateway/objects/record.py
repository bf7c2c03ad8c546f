"""The kernel record: one Secret per kernel in the gateway's namespace, telling any replica how to serve it.

A gateway replica that did not launch a kernel serves it from its record: which kernelspec and
user, the env it was launched with (so that any replica can relaunch it), where it runs and what
the gateway created for it, its pod, how to reach it (the connection info, key included), and
the phase of its life::

    launching ──► running ──► restarting ──► running ...
        │            │             │
        └────────────┴─────────────┴──► terminating ──► (record deleted)

``launching`` is written before anything else of the kernel is created, with a
``launch_deadline``; ``restarting`` and ``terminating`` are claimed the same way, by replacing
the record under its ``resourceVersion`` (a replica that loses the race reads the record again and
decides again).  ``actor`` names the replica doing what the phase says; past ``launch_deadline``
the lease holder finishes or undoes it.

Why a Secret, and why no owner references: the record holds the kernel's connection key, which
may only ever live in a Secret's ``data`` (never a label, an annotation, a log line or a pod
spec), and the gateway's namespace is readable by the gateway's service account alone.
Kubernetes forbids an owner in another namespace, and a kernel's objects live in its own
namespace (or the shared one) while its record lives in the gateway's: so nothing is garbage
collected through the record.  Whichever replica shuts a kernel down deletes its objects and
then its record, and the lease holder collects what a dead replica left behind.

This module only builds and parses (no I/O): :func:`record_secret` and :func:`parse_record`
round-trip every :class:`KernelRecord`.  Client text (a username, env values) goes into the
JSON in ``data`` only; labels carry the kernel id alone, which is a canonical uuid.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from gateway.jsoncodec import encode
from gateway.objects.endpoints import PORT_FIELDS, KernelEndpoints, endpoints_problem
from gateway.objects.labels import APP, APP_LABEL, COMPONENT_LABEL, KERNEL_ID_LABEL, is_label_value
from gateway.objects.names import is_dns1123_label, is_dns1123_subdomain

RECORD_COMPONENT = "kernel-record"
RECORD_KEY = "record"
"""The key of ``data`` holding the record's JSON."""
RECORD_VERSION = 1
RECORD_SELECTOR = f"{APP_LABEL}={APP},{COMPONENT_LABEL}={RECORD_COMPONENT}"
"""The label selector of every kernel record (the records informer's)."""
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class RecordError(ValueError):
    """A Secret that is not a well-formed kernel record (the message names the field, never a value)."""


class Phase(str, enum.Enum):
    """Where a kernel's life is, as every replica reads it from the record."""

    LAUNCHING = "launching"
    RUNNING = "running"
    RESTARTING = "restarting"
    TERMINATING = "terminating"


class NamespaceMode(str, enum.Enum):
    """How the kernel's namespace was chosen (see ``gateway.provisioner.placement``)."""

    OWN = "own"
    SHARED = "shared"
    NAMED = "KERNEL_NAMESPACE"


class RestartKind(str, enum.Enum):
    """Who asked for a restart: a client (``restarting``) or a pod death (``autorestarting``)."""

    CLIENT = "restart"
    AUTOMATIC = "autorestart"


@dataclass(frozen=True)
class RecordPlacement:
    """Where the kernel runs and exactly what the gateway created for it (deleted at its end)."""

    namespace: str
    mode: NamespaceMode
    service_account: str
    pod_name: str
    created_namespace: bool = False
    """The gateway created ``namespace`` for this kernel (only in mode ``own``)."""
    created_role_binding: str = ""
    """The name of the RoleBinding the gateway created in ``namespace``, if any."""
    created_service_account: bool = False
    """The gateway created ``service_account`` in ``namespace``."""


@dataclass(frozen=True)
class RecordPod:
    name: str
    uid: str


@dataclass(frozen=True)
class RecordSession:
    """A Jupyter session on the kernel (``/api/sessions``): the notebook or console path it serves.

    Kept in the kernel's record so that every replica serves it, and gone with the kernel.
    """

    path: str
    name: str | None
    type: str


@dataclass(frozen=True)
class KernelRecord:
    """Everything a replica needs to serve a kernel it did not launch (see the module docstring)."""

    kernel_id: str
    kernelspec: str
    username: str
    env: Mapping[str, str]
    launch_timeout: float
    placement: RecordPlacement
    phase: Phase
    actor: str
    """The replica doing what the phase says (launching, restarting, terminating); the last one, when running."""
    launched_at: datetime
    launch_deadline: datetime
    """Until when the operation of the phase (a launch, restart or shutdown) may run."""
    last_activity: datetime
    restart_count: int = 0
    """Automatic restarts in a row."""
    restart_kind: RestartKind | None = None
    pod: RecordPod | None = None
    connection: KernelEndpoints | None = None
    connected: Mapping[str, datetime] = field(default_factory=dict)
    """Replica -> when it last reported clients connected to the kernel (for culling; see ``gateway.kernels.presence``)."""
    sessions: Mapping[str, RecordSession] = field(default_factory=dict)
    """Session id -> the session on this kernel (see ``gateway.http.sessionstore``)."""
    resource_version: str = ""
    """The Secret's ``metadata.resourceVersion`` (not part of ``data``): what a replace must quote."""


def record_name(kernel_id: str) -> str:
    """The Secret's name: ``kernel-<kernel id>``; ``ValueError`` for an id that cannot name one."""
    if not isinstance(kernel_id, str):
        raise ValueError(f"kernel id {kernel_id!r} cannot name a kernel record")
    return _checked_record_name(kernel_id)


@functools.lru_cache(maxsize=4096)
def _checked_record_name(kernel_id: str) -> str:
    """Remembered: a kernel's start asks for its record's name a dozen times."""
    name = f"kernel-{kernel_id}"
    if not is_label_value(kernel_id) or not kernel_id or not is_dns1123_subdomain(name):
        raise ValueError(f"kernel id {kernel_id!r} cannot name a kernel record")
    return name


def record_labels(kernel_id: str) -> dict[str, str]:
    record_name(kernel_id)  # validates
    return {APP_LABEL: APP, COMPONENT_LABEL: RECORD_COMPONENT, KERNEL_ID_LABEL: kernel_id}


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, as every record field holds time."""
    return moment.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


_WRITTEN_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?Z")
"""What :func:`timestamp` writes (microseconds, or none): read by ``fromisoformat``, a tenth of ``strptime``'s cost."""


def parse_timestamp(text: object, what: str) -> datetime:
    if not isinstance(text, str):
        raise RecordError(f"the record's {what} is not a timestamp")
    if _WRITTEN_TIMESTAMP.fullmatch(text):
        try:
            return datetime.fromisoformat(text[:-1]).replace(tzinfo=timezone.utc)
        except ValueError:
            raise RecordError(f"the record's {what} is not an RFC 3339 UTC timestamp") from None
    for form in (TIMESTAMP_FORMAT, "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, form).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    raise RecordError(f"the record's {what} is not an RFC 3339 UTC timestamp")


# ---------------------------------------------------------------------- building


def record_secret(record: KernelRecord, namespace: str) -> dict[str, Any]:
    """The Secret holding ``record`` in the gateway's ``namespace`` (with its resourceVersion when it has one)."""
    metadata: dict[str, Any] = {"name": record_name(record.kernel_id), "namespace": namespace,
                                "labels": record_labels(record.kernel_id)}
    if record.resource_version:
        metadata["resourceVersion"] = record.resource_version
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata,
            "data": {RECORD_KEY: base64.b64encode(encode(_to_json(record), sort_keys=True)).decode("ascii")}}


def _to_json(record: KernelRecord) -> dict[str, Any]:
    placement = record.placement
    out: dict[str, Any] = {
        "version": RECORD_VERSION,
        "kernel_id": record.kernel_id,
        "kernelspec": record.kernelspec,
        "username": record.username,
        "env": dict(record.env),
        "launch_timeout": record.launch_timeout,
        "placement": {
            "namespace": placement.namespace, "mode": placement.mode.value,
            "service_account": placement.service_account, "pod_name": placement.pod_name,
            "created": {"namespace": placement.created_namespace, "role_binding": placement.created_role_binding,
                        "service_account": placement.created_service_account},
        },
        "phase": record.phase.value,
        "actor": record.actor,
        "launched_at": timestamp(record.launched_at),
        "launch_deadline": timestamp(record.launch_deadline),
        "last_activity": timestamp(record.last_activity),
        "restart_count": record.restart_count,
        "restart_kind": record.restart_kind.value if record.restart_kind else None,
        "pod": {"name": record.pod.name, "uid": record.pod.uid} if record.pod else None,
        "connection": None,
        "connected": {who: timestamp(when) for who, when in record.connected.items()},
        "sessions": {sid: {"path": s.path, "name": s.name, "type": s.type} for sid, s in record.sessions.items()},
    }
    if record.connection is not None:
        c = record.connection
        out["connection"] = c.endpoint_fields()
    return out


# ---------------------------------------------------------------------- parsing


def parse_record(secret: Mapping[str, Any]) -> KernelRecord:
    """The record a Secret holds (its ``resourceVersion`` included); :class:`RecordError` if it holds none."""
    meta = secret.get("metadata")
    if not isinstance(meta, Mapping):
        raise RecordError("the record has no metadata")
    data = secret.get("data")
    encoded = data.get(RECORD_KEY) if isinstance(data, Mapping) else None
    if not isinstance(encoded, str):
        raise RecordError(f"the record has no data.{RECORD_KEY}")
    try:
        document = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise RecordError(f"data.{RECORD_KEY} is not base64 of JSON") from None
    if not isinstance(document, dict):
        raise RecordError("the record is not a JSON object")
    record = _from_json(_Fields(document, "record"))
    labels = meta.get("labels")
    if not isinstance(labels, Mapping):
        labels = {}
    if meta.get("name") != record_name(record.kernel_id) or labels.get(KERNEL_ID_LABEL) != record.kernel_id:
        raise RecordError("the record's name or kernel_id label does not match its kernel_id")
    version = meta.get("resourceVersion")
    return replace(record, resource_version=str(version) if version else "")


class _Fields:
    """Typed reads of one JSON object of the record, naming the field in every error."""

    def __init__(self, document: Any, where: str) -> None:
        if not isinstance(document, dict):
            raise RecordError(f"the record's {where} is not an object")
        self.document = document
        self.where = where

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        value = self.document.get(name, default)
        if value is ...:
            raise RecordError(f"the record lacks {self.where}.{name}")
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise RecordError(f"the record's {self.where}.{name} has the wrong type")
        return value

    def port(self, name: str, default: Any = ..., low: int = 1) -> int:
        value = self.get(name, int, default)
        if not low <= value < 65536:
            raise RecordError(f"the record's {self.where}.{name} is not a port")
        return int(value)

    def enum(self, name: str, kind: type[enum.Enum]) -> Any:
        try:
            return kind(self.get(name, str))
        except ValueError:
            raise RecordError(f"the record's {self.where}.{name} is not one of its values") from None


def _from_json(doc: _Fields) -> KernelRecord:
    if doc.get("version", int) != RECORD_VERSION:
        raise RecordError(f"the record is not of version {RECORD_VERSION}")
    kernel_id = doc.get("kernel_id", str)
    try:
        record_name(kernel_id)
    except ValueError:
        raise RecordError("the record's kernel_id cannot name a record") from None
    env = doc.get("env", dict)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise RecordError("the record's env holds a value that is not a string")
    timeout = doc.get("launch_timeout", (int, float))
    pod_doc = doc.get("pod", (dict, type(None)))
    pod = None
    if pod_doc is not None:
        pod_fields = _Fields(pod_doc, "pod")
        pod = RecordPod(pod_fields.get("name", str), pod_fields.get("uid", str))
    connection_doc = doc.get("connection", (dict, type(None)))
    connected = doc.get("connected", dict, {})
    sessions = doc.get("sessions", dict, {})
    kind = doc.get("restart_kind", (str, type(None)), None)
    try:
        restart_kind = RestartKind(kind) if kind is not None else None
    except ValueError:
        raise RecordError("the record's restart_kind is not one of its values") from None
    count = doc.get("restart_count", int)
    return KernelRecord(
        kernel_id=kernel_id,
        kernelspec=doc.get("kernelspec", str),
        username=doc.get("username", str),
        env=dict(env),
        launch_timeout=_checked(float(timeout), timeout > 0, "launch_timeout"),
        placement=_placement(_Fields(doc.get("placement", dict), "placement")),
        phase=doc.enum("phase", Phase),
        actor=doc.get("actor", str),
        launched_at=parse_timestamp(doc.get("launched_at", str), "launched_at"),
        launch_deadline=parse_timestamp(doc.get("launch_deadline", str), "launch_deadline"),
        last_activity=parse_timestamp(doc.get("last_activity", str), "last_activity"),
        restart_count=_checked(count, count >= 0, "restart_count"),
        restart_kind=restart_kind,
        pod=pod,
        connection=_connection(_Fields(connection_doc, "connection")) if connection_doc is not None else None,
        connected={_checked(who, isinstance(who, str), "connected"): parse_timestamp(when, "connected")
                   for who, when in connected.items()},
        sessions={_checked(sid, isinstance(sid, str), "sessions"): _session(_Fields(s, "sessions"))
                  for sid, s in sessions.items()},
    )


def _session(doc: _Fields) -> RecordSession:
    return RecordSession(path=doc.get("path", str), name=doc.get("name", (str, type(None))), type=doc.get("type", str))


def _placement(doc: _Fields) -> RecordPlacement:
    created = _Fields(doc.get("created", dict), "placement.created")
    namespace = doc.get("namespace", str)
    pod_name = doc.get("pod_name", str)
    account = doc.get("service_account", str)
    _checked(namespace, is_dns1123_label(namespace), "placement.namespace")
    _checked(pod_name, is_dns1123_label(pod_name), "placement.pod_name")
    _checked(account, is_dns1123_subdomain(account), "placement.service_account")
    return RecordPlacement(
        namespace=namespace, mode=doc.enum("mode", NamespaceMode), service_account=account, pod_name=pod_name,
        created_namespace=created.get("namespace", bool), created_role_binding=created.get("role_binding", str),
        created_service_account=created.get("service_account", bool),
    )


def _connection(doc: _Fields) -> KernelEndpoints:
    key = doc.get("key", str)
    scheme = doc.get("signature_scheme", str)
    transport = doc.get("transport", str)
    problem = endpoints_problem(key, transport, scheme)
    if problem is not None:
        raise RecordError(f"the record's connection.{problem} is not valid")
    return KernelEndpoints(
        ip=doc.get("ip", str), key=key, transport=transport, signature_scheme=scheme,
        comm_port=doc.port("comm_port", 0, low=0), **{p: doc.port(p) for p in PORT_FIELDS},
    )


def _checked(value: Any, ok: bool, what: str) -> Any:
    if not ok:
        raise RecordError(f"the record's {what} is not valid")
    return value
