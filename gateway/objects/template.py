"""Kernel-pod templates: parsed as YAML first, variables substituted into the parsed objects after.

A kernelspec's ``scripts/kernel-pod.yaml`` describes the kernel's pod with
``$name`` (or ``${name}``) variables, as in Enterprise Gateway's original
template: ``$kernel_username``, ``$kernel_id``, ``$namespace``,
``$service_account``, ``$response_address``, ``$connection_filename``,
``$language``, ``$spark_context_initialization_mode``, ``$docker_image``.

EG once substituted these into the YAML text before parsing it, so a value
holding a newline or ``": "`` could add fields to the pod (advisory
GHSA-cfw7-6c5v-2wjq).  Here the text is parsed once, with
``yaml.safe_load_all``, and variables are then replaced inside each string
scalar of the parsed objects.  A value can therefore only ever become (part
of) one string: it cannot add, remove or retype a field, whatever it holds.

Substitution rules, those of :meth:`string.Template.safe_substitute`:

* ``$name`` and ``${name}`` (``name`` an ASCII identifier) are replaced by the
  variable's string value; the replacement is never scanned again, so a
  value containing ``$other`` stays literal;
* ``$$`` is a literal ``$``;
* an unknown ``$name``, or a ``$`` not followed by a name, is left as written
  (templates may carry shell text such as ``$HOME`` for the container);
* mapping keys are template-author text and are never substituted;
* a scalar that YAML parsed as a number, boolean or null is left alone.

The provisioner reads the file at every launch (it may change on a shared
volume) and calls :func:`parse_template` once per text it has not parsed yet
(``gateway.provisioner.podtemplate`` keeps the objects), then ``gateway.objects.pod``
renders and completes the objects.  A kernelspec may hold Enterprise Gateway
3.x's Jinja2 ``kernel-pod.yaml.j2`` instead: ``gateway.objects.jinja`` renders
it, and :func:`literal_objects` hands its Pod to the same completion.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from gateway.objects.errors import TemplateError

POD_KIND = "Pod"
COMPANION_KINDS = ("Service", "ConfigMap", "Secret", "PersistentVolumeClaim")
"""Kinds a template may hold besides its one Pod, at most one of each (as Enterprise Gateway allows)."""

SEED_VARIABLES = (
    "kernel_username",
    "kernel_id",
    "namespace",
    "service_account",
    "response_address",
    "connection_filename",
    "language",
    "spark_context_initialization_mode",
    "docker_image",
)
"""The variables of Enterprise Gateway's original ``kernel-pod.yaml``."""

_IDENTIFIER = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")

SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""PyYAML's safe loader, in C where libyaml is installed: the same documents, parsed in a twentieth
of the time, which was most of the gateway's CPU per kernel start."""


def parse_template(text: str, *, source: str = "kernel-pod.yaml") -> tuple[dict[str, Any], ...]:
    """The objects of a kernel-pod template, checked, with variables still unsubstituted.

    Raises :class:`TemplateError` (naming ``source``) unless the text is YAML
    whose documents are Kubernetes objects with exactly one Pod and at most one
    each of :data:`COMPANION_KINDS`, holding only what JSON can carry (string
    keys; no dates, binary, sets or infinities, which ``safe_load`` would
    otherwise produce from unquoted scalars).  Empty documents are skipped.
    """
    try:
        documents = [doc for doc in yaml.load_all(text, Loader=SAFE_LOADER) if doc is not None]
    except yaml.YAMLError as err:
        raise TemplateError(f"{source}: not valid YAML: {err}") from err
    objects: list[dict[str, Any]] = []
    for index, doc in enumerate(documents):
        where = f"{source} document {index + 1}"
        if not isinstance(doc, dict):
            raise TemplateError(f"{where}: expected a Kubernetes object, found {type(doc).__name__}")
        try:
            check_json_compatible(doc, where)
        except RecursionError as err:
            raise TemplateError(f"{where}: nested too deeply (or refers to itself)") from err
        kind = doc.get("kind")
        if kind != POD_KIND and kind not in COMPANION_KINDS:
            allowed = ", ".join((POD_KIND, *COMPANION_KINDS))
            raise TemplateError(f"{where}: kind {kind!r} is not one a kernel template may hold ({allowed})")
        if not isinstance(doc.get("apiVersion"), str):
            raise TemplateError(f"{where}: {kind} has no apiVersion")
        objects.append(doc)
    counts = Counter(obj["kind"] for obj in objects)
    if counts[POD_KIND] != 1:
        raise TemplateError(f"{source}: must hold exactly one Pod, found {counts[POD_KIND]}")
    repeated = sorted(kind for kind, count in counts.items() if count > 1)
    if repeated:
        raise TemplateError(f"{source}: at most one object of each kind, found several {', '.join(repeated)}")
    return tuple(objects)


def render(objects: Sequence[Mapping[str, Any]], variables: Mapping[str, str]) -> list[dict[str, Any]]:
    """New objects with ``variables`` substituted into every string value of ``objects``.

    ``objects`` (from :func:`parse_template`) are left untouched; the result
    shares no mutable part with them.  Variable names must be ASCII
    identifiers and values strings.
    """
    for name, value in variables.items():
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"template variable name {name!r} is not an identifier")
        if not isinstance(value, str):
            raise TypeError(f"template variable {name!r} must be a string, not {type(value).__name__}")
    return [_substitute(obj, variables) for obj in objects]


def literal_objects(objects: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Objects already rendered (a ``kernel-pod.yaml.j2``'s Pod) in the form :func:`parse_template` returns.

    Every ``$`` of every string is doubled, so :func:`render` gives each string
    back exactly as it is, whatever variables it is called with: the
    provisioner passes a Jinja2-rendered Pod through here to
    ``gateway.objects.pod.kernel_objects``.  ``objects`` are not modified.
    """
    return tuple(_escaped(obj) for obj in objects)


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with ``$name``/``${name}`` replaced once, ``$$`` unescaped, unknown names kept."""
    if "$" not in text:  # most of a template's strings: nothing to replace or unescape
        return text
    return string.Template(text).safe_substitute(variables)


def _substitute(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return substitute(node, variables)
    if isinstance(node, dict):
        return {key: _substitute(value, variables) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(item, variables) for item in node]
    return node  # int, float, bool, None: immutable


def _escaped(node: Any) -> Any:
    if isinstance(node, str):
        return node.replace("$", "$$")
    if isinstance(node, dict):
        return {key: _escaped(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_escaped(item) for item in node]
    return node


def check_json_compatible(node: Any, where: str) -> None:
    """Raise :class:`TemplateError` (naming ``where``) unless ``node`` is data the API server can be sent.

    Used for every parsed template, here and by ``gateway.objects.jinja``.
    """
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                raise TemplateError(f"{where}: key {key!r} is not a string (quote it)")
            check_json_compatible(value, where)
    elif isinstance(node, list):
        for item in node:
            check_json_compatible(item, where)
    elif isinstance(node, float):
        if not math.isfinite(node):
            raise TemplateError(f"{where}: {node!r} cannot be sent to the API server")
    elif node is not None and not isinstance(node, (str, int)):  # bool is an int
        raise TemplateError(f"{where}: {node!r} ({type(node).__name__}) cannot be sent to the API server (quote it)")
