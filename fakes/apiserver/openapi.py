"""Minimal OpenAPI documents: enough for kubectl to know the server validates fields itself.

``kubectl create/apply -f`` (default ``--validate=strict``) first asks whether
the server supports the ``fieldValidation`` query parameter for the object's
kind, by looking for a PATCH operation tagged with that kind's
``x-kubernetes-group-version-kind`` and listing the parameter in the
group-version's OpenAPI v3 document (kubectl ``resource/query_param_verifier_v3.go``).
When it is found, kubectl leaves validation to the server and needs no schemas.

So ``/openapi/v3`` lists one document per served group-version, each holding
only those PATCH operations.  ``/openapi/v2`` is an empty document (no
definitions): older kubectl versions validate client-side against it and skip
kinds it does not define.  Served by :mod:`fakes.apiserver.server`.
"""

from __future__ import annotations

from typing import Any

from fakes.apiserver import discovery
from gateway.cluster.resources import ResourceType

V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
"""What clients send in ``Accept`` for the protobuf v2 document."""
V2_PROTOBUF_RESPONSE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
"""What the real server answers with: ``@`` is not valid in a media type, and Go's
``mime.ParseMediaType`` (kubectl up to 1.27 checks the response) rejects it."""

# An openapi_v2.Document with swagger "2.0" (field 1) and info {title "Kubernetes" (1), version (2)}.
_TITLE = b"Kubernetes"
_VERSION = discovery.GIT_VERSION.encode()
_INFO = b"\x0a" + bytes([len(_TITLE)]) + _TITLE + b"\x12" + bytes([len(_VERSION)]) + _VERSION
V2_DOCUMENT_PROTOBUF = b"\x0a\x032.0" + b"\x12" + bytes([len(_INFO)]) + _INFO
V2_DOCUMENT_JSON: dict[str, Any] = {
    "swagger": "2.0",
    "info": {"title": "Kubernetes", "version": discovery.GIT_VERSION},
    "paths": {},
    "definitions": {},
}


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def v3_index() -> dict[str, Any]:
    """``/openapi/v3``: where each group-version's document lives."""
    return {
        "paths": {
            _gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}"}
            for g, v in discovery.group_versions()
        }
    }


def _patch_operation(r: ResourceType) -> dict[str, Any]:
    return {
        "operationId": f"patch{r.kind}",
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
        "parameters": [
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
        ],
        "responses": {"200": {"description": "OK"}},
    }


def v3_group_version(group: str, version: str) -> dict[str, Any] | None:
    """``/openapi/v3/api/v1`` or ``/openapi/v3/apis/<g>/<v>``, or ``None`` for a group-version we do not serve."""
    resources = discovery.group_versions().get((group, version))
    if resources is None:
        return None
    paths: dict[str, Any] = {}
    for r in resources:
        if "patch" not in r.verbs:
            continue
        item = r.path("{namespace}" if r.namespaced else None, "{name}")
        paths[item] = {"patch": _patch_operation(r)}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": discovery.GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }


def document(path: str) -> dict[str, Any] | None:
    """The JSON OpenAPI document at ``path`` (``/openapi/...``), or ``None``."""
    parts = [p for p in path.split("/") if p]
    if parts == ["openapi", "v2"]:
        return V2_DOCUMENT_JSON
    if parts == ["openapi", "v3"]:
        return v3_index()
    if parts[:2] == ["openapi", "v3"]:
        rest = parts[2:]
        if len(rest) == 2 and rest[0] == "api":
            return v3_group_version("", rest[1])
        if len(rest) == 3 and rest[0] == "apis":
            return v3_group_version(rest[1], rest[2])
    return None
