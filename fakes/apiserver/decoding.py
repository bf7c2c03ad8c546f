"""Decoding request bodies and options the way the real API server does, errors included.

Called by :mod:`fakes.apiserver.server` before anything reaches the cluster, so a
request it refuses here never changes the store.  Error messages follow the
real server's: body decoding goes through apimachinery's JSON serializer
(``runtime/serializer/json``), whose errors quote Go's ``encoding/json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from fakes.apiserver import protobuf
from fakes.state.lifecycle import Preconditions
from fakes.state.objects import json_kind
from gateway.cluster.interface import BadRequest, PatchType, Propagation, UnsupportedMediaType

APPLY_PATCH = "application/apply-patch+yaml"


def _go_json_error(text: str, err: json.JSONDecodeError) -> str:
    """Go's ``encoding/json`` wording for the syntax error Python found at ``err.pos``."""
    if err.pos >= len(text.rstrip()):
        return "unexpected end of JSON input"
    char = text[err.pos]
    where = {
        "Expecting value": "looking for beginning of value",
        "Expecting property name enclosed in double quotes": "looking for beginning of object key string",
        "Expecting ':' delimiter": "after object key",
        "Extra data": "after top-level value",
    }.get(err.msg)
    if where is None and err.msg == "Expecting ',' delimiter":
        where = "after array element" if _innermost_open(text, err.pos) == "[" else "after object key:value pair"
    if where is None:
        return f"invalid character {char!r} in string literal"
    return f"invalid character {char!r} {where}"


_GO_CONSTANT_ERRORS = {
    "NaN": "invalid character 'N' looking for beginning of value",
    "Infinity": "invalid character 'I' looking for beginning of value",
    "-Infinity": "invalid character 'I' in numeric literal",
}
"""What Go's ``encoding/json`` says of the non-JSON constants Python's decoder would take."""


class _NotJson(ValueError):
    def __init__(self, constant: str) -> None:
        super().__init__(_GO_CONSTANT_ERRORS[constant])


def _refuse_constant(constant: str) -> Any:
    raise _NotJson(constant)


def _json_or_refusal(text: str, refused: str) -> Any:
    """The JSON value of ``text``, or :class:`BadRequest` saying ``<refused>: <Go's message>``.

    Refuses ``NaN`` and the infinities, which Python's decoder would take, as the real API
    server does.  Called for every JSON body the server decodes.
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise BadRequest(f"{refused}: {_go_json_error(text, err)}") from None
    except _NotJson as err:
        raise BadRequest(f"{refused}: {err}") from None


def _innermost_open(text: str, pos: int) -> str:
    """The bracket (``{`` or ``[``) enclosing position ``pos`` of a JSON text (strings skipped)."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in text[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def decode_object(body: bytes) -> dict[str, Any]:
    """The JSON object in a create/update body; :class:`BadRequest` for anything else."""
    text = body.decode("utf-8", errors="replace")
    obj = _json_or_refusal(text, "couldn't get version/kind; json parse error")
    if not isinstance(obj, dict):
        kind = "array" if isinstance(obj, list) else type(obj).__name__
        raise BadRequest(
            f"couldn't get version/kind; json parse error: json: cannot unmarshal {kind} into Go value of type struct "
            '{ APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
        )
    return obj


def decode_body(body: bytes, content_type: str) -> dict[str, Any]:
    """The object in a create/update body: JSON, or the Kubernetes protobuf kubectl 1.32 sends
    for its typed requests.  Another media type is refused with 415, as the real server refuses
    one it has no serializer for (``handlers/rest.go``)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("", "application/json", "*/*"):
        return decode_object(body)
    if media == protobuf.MEDIA_TYPE:
        return protobuf.decode(body)
    raise UnsupportedMediaType(
        f"the body of the request was in an unknown format - accepted media types include: "
        f"application/json, {protobuf.MEDIA_TYPE}"
    )


def decode_patch(body: bytes, patch_type: PatchType) -> Any:
    """The patch document: a list of operations for JSON patch, an object otherwise (an apply
    configuration is YAML, of which JSON is a part)."""
    text = body.decode("utf-8", errors="replace")
    if patch_type is PatchType.APPLY:
        return _decode_apply(text)
    patch = _json_or_refusal(text, "error decoding patch")
    if patch_type is PatchType.JSON and not isinstance(patch, list):
        raise BadRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    if patch_type is not PatchType.JSON and not isinstance(patch, dict):
        raise BadRequest("json: cannot unmarshal array into Go value of type map[string]interface {}")
    return patch


def _decode_apply(text: str) -> dict[str, Any]:
    """An apply configuration (``handlers/patch.go`` applyPatcher: YAML into a map)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise BadRequest(f"error encoding patch: yaml: {where}{getattr(err, 'problem', None) or err}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise BadRequest("error decoding patch: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal "
                         f"{json_kind(document)} into Go value of type map[string]interface {{}}")
    return document



def patch_type(content_type: str) -> PatchType:
    """The patch format a PATCH request's ``Content-Type`` names (``application/apply-patch+yaml`` is
    server-side apply; its CBOR form is not served)."""
    media = content_type.split(";", 1)[0].strip().lower()
    for pt in PatchType:
        if pt.value == media:
            return pt
    supported = ", ".join(pt.value for pt in PatchType)
    raise UnsupportedMediaType(f"the body of the request was in an unknown format - accepted media types include: {supported}")


def int_param(value: Any, option: str) -> int:
    """An integer request option; :class:`BadRequest` naming it when it is not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"invalid value for {option}: {value!r}") from None


@dataclass(frozen=True)
class DeleteRequest:
    """What a DELETE asks besides its target: a grace period, a propagation policy, preconditions."""

    grace_period_seconds: int | None
    propagation: Propagation | None
    preconditions: Preconditions | None


def delete_options(query: Mapping[str, str], body: bytes) -> DeleteRequest:
    """A DELETE's options from its query and/or DeleteOptions body.

    The body wins where both are given, as in ``handlers/delete.go``; the legacy
    ``orphanDependents`` maps onto the Orphan/Background policies; ``preconditions``
    come only in the body (``metav1.Preconditions``: a uid, a resourceVersion).
    """
    options: dict[str, Any] = {}
    if "gracePeriodSeconds" in query:
        options["gracePeriodSeconds"] = query["gracePeriodSeconds"]
    if "propagationPolicy" in query:
        options["propagationPolicy"] = query["propagationPolicy"]
    if "orphanDependents" in query:
        options["orphanDependents"] = query["orphanDependents"].lower() == "true"
    if body.strip():
        text = body.decode("utf-8", errors="replace")
        decoded = _json_or_refusal(text, "couldn't get version/kind; json parse error")
        if not isinstance(decoded, dict):
            raise BadRequest("DeleteOptions must be a JSON object")
        options.update({k: v for k, v in decoded.items() if v is not None})

    grace = options.get("gracePeriodSeconds")
    policy = options.get("propagationPolicy")
    if policy is None and "orphanDependents" in options:
        policy = "Orphan" if options["orphanDependents"] else "Background"
    try:
        propagation = Propagation(policy) if policy is not None else None
    except ValueError:
        raise BadRequest(
            f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "{policy}": '
            'supported values: "Foreground", "Background", "Orphan", "nil"'
        ) from None
    return DeleteRequest(int_param(grace, "gracePeriodSeconds") if grace is not None else None, propagation,
                         _preconditions(options.get("preconditions")))


def _preconditions(value: Any) -> Preconditions | None:
    """``DeleteOptions.preconditions``, refused as Go's JSON decoder refuses a value of another type."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"json: cannot unmarshal {json_kind(value)} into Go struct field "
                         "DeleteOptions.preconditions of type v1.Preconditions")
    fields = {}
    for key, go_type in (("uid", "types.UID"), ("resourceVersion", "string")):
        field = value.get(key)
        if field is not None and not isinstance(field, str):
            raise BadRequest(f"json: cannot unmarshal {json_kind(field)} into Go struct field "
                             f"Preconditions.preconditions.{key} of type {go_type}")
        fields[key] = field
    return Preconditions(uid=fields["uid"], resource_version=fields["resourceVersion"])


def field_validation(value: str | None) -> str:
    """The ``fieldValidation`` query parameter, checked (``Warn`` when absent, the real default).

    The cluster keeps unknown fields as sent: they are neither refused (``Strict``),
    reported (``Warn``) nor dropped (``Ignore``).  A real server knows every
    kind's schema; the simulated one only validates the fields it gives meaning to.
    """
    if value in (None, ""):
        return "Warn"
    if value not in ("Strict", "Warn", "Ignore"):
        raise BadRequest(f'fieldValidation: Unsupported value: "{value}": supported values: "Ignore", "Strict", "Warn"')
    return str(value)
