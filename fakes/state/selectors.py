"""Label and field selectors, parsed and matched as the API server does.

The store calls :func:`parse_label_selector` / :func:`parse_field_selector`
once per list or watch request and then matches every candidate object with
the returned selector.  Grammar and error texts follow
``k8s.io/apimachinery/pkg/labels/selector.go`` and
``k8s.io/apimachinery/pkg/fields/selector.go``; the fields a resource
supports follow its registry (``pkg/registry/core/pod/strategy.go``
``ToSelectableFields``: pods add ``spec.nodeName`` and ``status.phase``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.cluster.interface import BadRequest

# ---------------------------------------------------------------- label selectors

_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def label_key_errors(key: str) -> list[str]:
    """Why ``key`` is not a valid label key (a qualified name with optional DNS prefix); empty if valid.

    Used by label selectors and by object validation (``metadata.labels``).
    Follows ``IsQualifiedName`` in ``k8s.io/apimachinery/pkg/util/validation/validation.go``.
    """
    errs: list[str] = []
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errs.append("prefix part must be no more than 253 characters")
            if not _DNS_SUBDOMAIN.match(prefix):
                errs.append(
                    "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                    "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
                    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                )
    else:
        return [
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
            "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix "
            "and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if name and not _QUALIFIED_NAME.match(name):
        errs.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )
    return errs


def label_value_errors(value: str) -> list[str]:
    """Why ``value`` is not a valid label value; empty if valid (``IsValidLabelValue``)."""
    errs: list[str] = []
    if len(value.encode()) > 63:
        errs.append("must be no more than 63 bytes")  # content.IsLabelValue (apimachinery v0.37): MaxLenError
    if not _LABEL_VALUE.match(value):
        errs.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
            "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
            "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        )
    return errs


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector: ``key <op> values``.

    ``op`` is one of ``=``, ``!=``, ``in``, ``notin``, ``exists``, ``!`` (does not exist).
    """

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects without the key, as the real selector does.
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)


_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|[^\s!=(),]+)")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            break
        out.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _bad(selector: str, why: str) -> BadRequest:
    return BadRequest(f"unable to parse requirement: {why}" if why else f"couldn't parse the selector string \"{selector}\"")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse ``app=x,tier in (a,b),!legacy``; :class:`BadRequest` when it does not parse.

    Called by the store for every list and watch with ``labelSelector``.
    """
    if text is None or not text.strip():
        return LabelSelector()
    toks = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def take() -> str:
        nonlocal i
        if i >= len(toks):
            raise BadRequest(f"unable to parse requirement: found '', expected: identifier (selector {text!r})")
        i += 1
        return toks[i - 1]

    while i < len(toks):
        tok = take()
        if tok == "!":
            key = take()
            _check_key(key)
            reqs.append(Requirement(key, "!"))
        elif tok in ("=", "==", "!=", "(", ")", ","):
            raise BadRequest(f"unable to parse requirement: found '{tok}', expected: !, identifier, or 'end of string'")
        else:
            key = tok
            _check_key(key)
            if i >= len(toks) or toks[i] == ",":
                reqs.append(Requirement(key, "exists"))
            else:
                op = take()
                if op in ("=", "==", "!="):
                    value = "" if i >= len(toks) or toks[i] == "," else take()
                    if value in ("(", ")", "=", "==", "!=", "!"):
                        raise BadRequest(f"unable to parse requirement: found '{value}', expected: identifier")
                    _check_value(value)
                    reqs.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
                elif op in ("in", "notin"):
                    if take() != "(":
                        raise BadRequest("unable to parse requirement: found '', expected: '('")
                    # As apimachinery reads a set: values between commas, an empty entry the empty value.
                    entries: list[list[str]] = [[]]
                    while (v := take()) != ")":
                        if v == ",":
                            entries.append([])
                        elif v in ("(", "=", "==", "!=", "!") or entries[-1]:
                            raise BadRequest(f"unable to parse requirement: found '{v}', expected: ',' or ')'")
                        else:
                            entries[-1].append(v)
                    if entries == [[]]:
                        raise BadRequest("unable to parse requirement: for 'in', 'notin' operators, values set can't be empty")
                    values = tuple(dict.fromkeys(entry[0] if entry else "" for entry in entries))
                    for value in values:
                        _check_value(value)
                    reqs.append(Requirement(key, op, values))
                else:
                    raise BadRequest(f"unable to parse requirement: found '{op}', expected: in, notin, =, ==, !=, gt, lt")
        if i < len(toks):
            if toks[i] != ",":
                raise BadRequest(f"unable to parse requirement: found '{toks[i]}', expected: ',' or 'end of string'")
            i += 1
            if i >= len(toks):
                raise BadRequest("unable to parse requirement: found '', expected: identifier")
    return LabelSelector(tuple(reqs))


def _check_key(key: str) -> None:
    if key in ("in", "notin"):  # keywords where a key is expected
        raise BadRequest(f"unable to parse requirement: found '{key}', expected: identifier")
    errs = label_key_errors(key)
    if errs:
        raise BadRequest(f"unable to parse requirement: values[0][{key}]: Invalid value: {key!r}: {errs[0]}")


def _check_value(value: str) -> None:
    errs = label_value_errors(value)
    if errs:
        raise BadRequest(f"unable to parse requirement: values[0][{value}]: Invalid value: {value!r}: {errs[0]}")


# ---------------------------------------------------------------- field selectors

_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
_EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    # pkg/registry/core/pod/strategy.go PodToSelectableFields (the subset our callers use)
    "pods": ("spec.nodeName", "status.phase", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
             "status.podIP", "status.nominatedNodeName"),
    # pkg/registry/core/secret/strategy.go SelectableFields
    "secrets": ("type",),
    # pkg/registry/core/namespace/strategy.go NamespaceToSelectableFields
    "namespaces": ("status.phase",),
    "events": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
               "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
               "reason", "reportingComponent", "source", "type"),
}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for r in self.requirements:
            actual = field_value(obj, r.field)
            if (actual == r.value) != (r.op == "="):
                return False
        return True

    def single_name(self) -> str | None:
        """The name when the selector pins one object (``metadata.name=x``), as watch-by-name uses."""
        for r in self.requirements:
            if r.field == "metadata.name" and r.op == "=":
                return r.value
        return None


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string value of a dotted field path (missing fields read as ``""``, as on the server)."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if path == "source" and isinstance(cur, Mapping):
        return str(cur.get("component", ""))
    return str(cur)


_CONVERTED_FIELDS = frozenset({"pods", "nodes", "replicationcontrollers", "events", "namespaces", "secrets",
                               "services", "jobs", "certificatesigningrequests"})
"""Kinds that register a field label conversion of their own (kubernetes pkg/apis/*/v1/conversion.go)."""


def parse_field_selector(text: str | None, resource: str) -> FieldSelector:
    """Parse ``metadata.name=x,status.phase!=Failed`` for ``resource`` (a plural).

    A field the resource does not index gives the real server's
    ``field label not supported: <field>`` as :class:`BadRequest`.
    """
    if text is None or not text.strip():
        return FieldSelector()
    supported = _COMMON_FIELDS + _EXTRA_FIELDS.get(resource, ())
    reqs: list[FieldRequirement] = []
    for clause in _split_unescaped(text, ","):
        clause = clause.strip()
        if not clause:
            continue
        for op in ("!=", "==", "="):
            if op in clause:
                field, value = clause.split(op, 1)
                break
        else:
            raise BadRequest(f"invalid selector: '{text}'; can't understand '{clause}'")
        field = field.strip()
        if field not in supported:
            if resource in _CONVERTED_FIELDS:
                raise BadRequest(f"field label not supported: {field}")
            # runtime.DefaultMetaV1FieldSelectorConversion, for kinds with no conversion of their own.
            raise BadRequest(f'"{field}" is not a known field selector: only "metadata.name", "metadata.namespace"')
        reqs.append(FieldRequirement(field, "!=" if op == "!=" else "=", _unescape(value.strip())))
    return FieldSelector(tuple(reqs))


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, escaped = [], "", False
    for ch in text:
        if escaped:
            cur += "\\" + ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)
