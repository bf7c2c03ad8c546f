"""Kernel-pod templates in Jinja2 (``kernel-pod.yaml.j2``), rendered so that no value can become code or structure.

Enterprise Gateway 3.x kernelspecs describe their pod with a Jinja2 template
(``scripts/kernel-pod.yaml.j2``) that EG renders to YAML text and then parses.
Whatever a value held went into that text, so a value could add template code
(CVE-2026-44181, through ``KERNEL_POD_NAME``) or YAML structure (CVE-2026-44182,
through any ``KERNEL_*`` value: ``x\\n  hostNetwork: true``).

:func:`render_jinja_template` keeps the template's own logic and takes away
every value's say over the text:

1. the template runs in a :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`
   on the real values, so its ``if``, ``for``, ``set`` and filters (``int``,
   ``lower``, EG's ``yaml_safe``...) decide as they would in EG;
2. what each ``{{ ... }}`` outputs is not written into the text: it is kept
   aside, and the text gets an opaque placeholder instead (letters and digits
   only, unique to this rendering, with 96 random bits no one can guess);
3. the text, holding only the template author's characters and placeholders,
   is parsed with ``yaml.safe_load_all`` and must be exactly one Pod;
4. each placeholder is replaced inside the parsed object: a string that is
   exactly one placeholder becomes the output itself (a string stays a
   string, ``{{ kernel_uid | int }}`` a number, a volume from
   ``KERNEL_VOLUMES`` the mapping it was parsed to); a placeholder inside a
   longer string is replaced by the output's text.  Outputs are never
   scanned again.

So an output can only ever be one value of the field the template put it in.
A placeholder in a mapping key, or a structured output (mapping or list)
inside a longer string, is refused with a :class:`TemplateError`: keys are the
template author's.  Mapping entries whose value is empty (``volumeMounts:``
with nothing under it) are left out, as the API server reads them.

The provisioner calls :func:`render_jinja_template` at every launch with
:func:`gateway.objects.egtemplate.eg_template_values`, then passes the Pod
through :func:`gateway.objects.template.literal_objects` to
``gateway.objects.pod.kernel_objects`` like a ``kernel-pod.yaml``.
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Iterator, Mapping
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gateway.objects.errors import TemplateError
from gateway.objects.template import POD_KIND, SAFE_LOADER, check_json_compatible

MAX_OUTPUTS = 100_000
"""The most ``{{ ... }}`` outputs one rendering may produce (a loop gone wild fails instead of eating memory)."""
_INDEX_DIGITS = len(str(MAX_OUTPUTS))


class _Outputs:
    """The outputs of one rendering, each behind its placeholder (``<prefix><index>``, a fixed width)."""

    def __init__(self) -> None:
        self.prefix = "kgv" + secrets.token_hex(12)
        self.values: list[Any] = []
        self.pattern = re.compile(re.escape(self.prefix) + rf"([0-9]{{{_INDEX_DIGITS}}})")

    def placeholder(self, value: Any) -> str:
        """Jinja's ``finalize``: called with what each ``{{ ... }}`` evaluated to, returns the text written."""
        if len(self.values) >= MAX_OUTPUTS:
            raise TemplateError(f"the template produced more than {MAX_OUTPUTS} values")
        self.values.append(_plain(value))
        return f"{self.prefix}{len(self.values) - 1:0{_INDEX_DIGITS}d}"

    def value(self, match: re.Match[str]) -> Any:
        return self.values[int(match.group(1))]


def render_jinja_template(text: str, values: Mapping[str, Any], *, source: str = "kernel-pod.yaml.j2") -> dict[str, Any]:
    """The Pod that the Jinja2 template ``text`` describes for ``values`` (see the module docstring).

    ``values`` are the template's variables (strings, numbers, and lists of
    mappings for volumes); they are not modified, and the result shares no
    mutable part with them.  Raises :class:`TemplateError` (naming ``source``)
    for a template that does not compile or run in the sandbox, does not
    render to exactly one Pod, or places a value where only the template's
    own text may go.
    """
    outputs = _Outputs()
    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True,  # as Enterprise Gateway renders its templates
        lstrip_blocks=True,
        autoescape=False,
        finalize=outputs.placeholder,
        undefined=jinja2.Undefined,
    )
    environment.filters["yaml_safe"] = _as_is
    try:
        rendered = environment.from_string(text).render(dict(values))
    except TemplateError as err:
        raise TemplateError(f"{source}: {err}") from err
    except jinja2.TemplateError as err:  # syntax, a sandbox refusal, a missing include
        raise TemplateError(f"{source}: {type(err).__name__}: {err}") from err
    except (TypeError, ValueError, ArithmeticError, LookupError) as err:  # the template's own expressions
        raise TemplateError(f"{source}: the template failed: {type(err).__name__}: {err}") from err
    pod = _one_pod(rendered, source)
    if any(outputs.pattern.search(key) for key in _keys(pod)):
        raise TemplateError(f"{source}: a {{{{ ... }}}} output stands in a mapping key; only values may come from it")
    result = _substituted(pod, outputs, source)
    check_json_compatible(result, source)  # outputs are plain data, but a float may be infinite
    return result


def _one_pod(rendered: str, source: str) -> dict[str, Any]:
    try:
        documents = [doc for doc in yaml.load_all(rendered, Loader=SAFE_LOADER) if doc is not None]
    except yaml.YAMLError as err:
        raise TemplateError(f"{source}: the rendered template is not valid YAML: {err}") from err
    if len(documents) != 1:
        raise TemplateError(f"{source}: must render exactly one document, a Pod; it rendered {len(documents)}")
    [pod] = documents
    if not isinstance(pod, dict) or pod.get("kind") != POD_KIND:
        kind = pod.get("kind") if isinstance(pod, dict) else type(pod).__name__
        raise TemplateError(f"{source}: must render a Pod, not {kind!r}")
    if not isinstance(pod.get("apiVersion"), str):
        raise TemplateError(f"{source}: the Pod has no apiVersion")
    try:
        check_json_compatible(pod, source)
    except RecursionError as err:
        raise TemplateError(f"{source}: nested too deeply (or refers to itself)") from err
    return pod


def _keys(node: Any) -> Iterator[str]:
    """Every mapping key of ``node`` (all strings: checked by ``check_json_compatible``), depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item)


def _substituted(node: Any, outputs: _Outputs, source: str) -> Any:
    """``node`` with every placeholder replaced by its output, and empty mapping values left out."""
    if isinstance(node, dict):
        result = {}
        for key, value in node.items():
            value = _substituted(value, outputs, source)
            if value is not None:
                result[key] = value
        return result
    if isinstance(node, list):
        return [_substituted(item, outputs, source) for item in node]
    if not isinstance(node, str):
        return node
    whole = outputs.pattern.fullmatch(node)
    if whole:
        return copy.deepcopy(outputs.value(whole))
    return outputs.pattern.sub(lambda match: _text(outputs.value(match), source), node)


def _as_is(value: Any) -> Any:
    """EG's ``yaml_safe`` filter: here every output is a value already, so it changes nothing."""
    return value


def _plain(value: Any) -> Any:
    """An output as JSON-compatible data: strings (``Markup`` too) as ``str``; nothing undefined."""
    if isinstance(value, jinja2.Undefined):
        return None
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    raise TemplateError(f"a {{{{ ... }}}} output is a {type(value).__name__}, not a string, number or list")


def _text(value: Any, source: str) -> str:
    """How an output reads inside a longer string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TemplateError(f"{source}: a mapping or list output can only stand alone as a value, not inside text")
