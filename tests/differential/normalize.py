"""What of an answer the differential test compares: the parts no server chooses on its own.

:func:`normalize` keeps status codes, reasons, ``details`` (causes sorted: the
real server lists the conflicts of several managers in map order) and object
shapes, and replaces what each server picks by itself: uids, resourceVersion
values, timestamps (``managedFields`` times too, and the one in a conflict's
message), the random suffixes of generated names and of the service-account token volume.
"""

from __future__ import annotations

import re
from typing import Any

_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ACCESS_VOLUME = re.compile(r"kube-api-access-[a-z0-9]{5}")
_VERSION_TEXT = re.compile(
    r"(resource ?version:? ?|ResourceVersion in (?:the precondition|record) \(|ResourceVersion[^:(]*: ?|current: )\d+",
    re.IGNORECASE)
_SERVER_FIELDS = ("uid", "resourceVersion")


def normalize(status: int, body: Any) -> Any:
    """The comparable form of one answer."""
    return {"status": status, "body": _value(_shape(body))}


def _shape(body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    out = dict(body)
    if out.get("kind") == "WatchEvents":
        # The service-account controller of a real cluster adds a namespace's "default" account a moment
        # after the namespace; the simulated one at once. A watch sees it, or not, by timing.
        # Its root-CA publisher adds the "kube-root-ca.crt" ConfigMap the same way.
        out["items"] = [e for e in out["items"] if not _controllers_object(e.get("object"))]
    if out.get("kind") in ("ServiceAccountList", "ConfigMapList"):  # so does a list (its items carry no kind)
        kind = out["kind"].removesuffix("List")
        out["items"] = [o for o in out.get("items") or [] if not _controllers_object({"kind": kind, **o})]
    if out.get("kind") == "Status":
        if out.get("code") == 500:
            out.pop("reason", None)  # a real 500 from storage has none; ours says InternalError
        details = dict(out.get("details") or {})  # an empty details object is no details (the fake omits it)
        if "causes" in details:
            causes = [{**c, "message": _without_diff(c["message"])} if "message" in c else c for c in details["causes"]]
            details["causes"] = sorted(causes, key=lambda c: (c.get("field", ""), c.get("message", "")))
        if details:
            out["details"] = details
        else:
            out.pop("details", None)
        if isinstance(out.get("message"), str):
            out["message"] = _VERSION_TEXT.sub(r"\1<rv>", _without_diff(out["message"]))
            if len(details.get("causes") or ()) > 1 and ": [" in out["message"]:
                # Several field errors: the message lists them in the order validation met them, which for
                # a map (labels) is Go's random order; the sorted causes hold the same text.
                out["message"] = out["message"].split(": [", 1)[0] + ": [<causes>]"
        return out
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta = dict(meta)
        for key in _SERVER_FIELDS:
            if key in meta:
                meta[key] = f"<{key}>"
        if meta.get("generateName") and meta.get("name", "").startswith(meta["generateName"]):
            meta["name"] = meta["generateName"] + "<random>"
        if isinstance(meta.get("managedFields"), list):
            # Times are set aside whole: the real server leaves out the time of an apply that changed no field.
            entries = [{**e, "time": "<time>"} for e in meta["managedFields"] if isinstance(e, dict)]
            meta["managedFields"] = sorted(entries, key=lambda e: (
                e.get("manager", ""), e.get("operation", ""), e.get("subresource", "")))
        out["metadata"] = meta
    if isinstance(out.get("items"), list):
        out["items"] = [_shape(i) for i in out["items"]]
    if isinstance(out.get("object"), dict):
        out["object"] = _shape(out["object"])
    return out


def _value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_value(v) for v in value]
    if isinstance(value, str):
        value = _TIMESTAMP.sub("<time>", value)
        value = _UID.sub("<uid>", value)
        return _ACCESS_VOLUME.sub("kube-api-access-<random>", value)
    return value


def _controllers_object(obj: Any) -> bool:
    """A namespace's ``default`` account or ``kube-root-ca.crt`` map, which its controllers add."""
    if not isinstance(obj, dict):
        return False
    name = (obj.get("metadata") or {}).get("name")
    return (obj.get("kind"), name) in (("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt"))


def _without_diff(message: str) -> str:
    """A refused pod update's text without the diff of Go structs the real server appends to it."""
    return message.split("\n@@ ", 1)[0]
