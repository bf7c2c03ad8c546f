"""The labels that mark kernel objects, and label syntax checks.

Every object the gateway creates for a kernel (namespace, role binding, pod,
and the pod's companions) carries ``app=enterprise-gateway``,
``component=kernel`` and ``kernel_id=<id>``, as Enterprise Gateway labels them,
so ``kubectl get all -l kernel_id=<id> --all-namespaces`` finds them and the
gateway's informer selects its pods with :func:`kernel_selector`.

Syntax follows k8s.io/apimachinery/pkg/util/validation/validation.go
(``IsQualifiedName``, ``IsValidLabelValue``).  Client text (a username, say)
never goes into a label as is: :func:`safe_label_value` makes it valid and
keeps different inputs apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from gateway.objects.errors import TemplateError
from gateway.objects.names import HASH_LENGTH, is_dns1123_subdomain, short_hash

APP_LABEL = "app"
APP = "enterprise-gateway"
COMPONENT_LABEL = "component"
KERNEL_COMPONENT = "kernel"
KERNEL_ID_LABEL = "kernel_id"

LABEL_VALUE_MAX_LENGTH = 63
_NAME_PART_MAX_LENGTH = 63
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_NOT_LABEL_CHAR = re.compile(r"[^-A-Za-z0-9_.]+")
_HASHED_TAIL = re.compile(rf"(?:^|-)[0-9a-f]{{{HASH_LENGTH}}}\Z")


def is_label_value(value: object) -> bool:
    """Whether ``value`` may be a label value: at most 63 of ``[A-Za-z0-9._-]``, alphanumeric at both ends, or empty."""
    return (
        isinstance(value, str)
        and len(value) <= LABEL_VALUE_MAX_LENGTH
        and _LABEL_VALUE.fullmatch(value) is not None
    )


def is_label_key(key: object) -> bool:
    """Whether ``key`` may be a label or annotation key: ``[prefix/]name``, prefix a DNS-1123 subdomain."""
    if not isinstance(key, str):
        return False
    prefix, slash, name = key.rpartition("/")
    if slash and not is_dns1123_subdomain(prefix):
        return False
    return 0 < len(name) <= _NAME_PART_MAX_LENGTH and _LABEL_VALUE.fullmatch(name) is not None


def safe_label_value(text: str) -> str:
    """A valid label value standing for ``text`` (a username, a value a template produced).

    ``text`` itself when it is already a valid label value that does not end
    like a hash suffix; otherwise its characters outside ``[A-Za-z0-9._-]``
    replaced, shortened, and ``-<hash of text>`` appended.  Distinct texts
    give distinct values (for hashed ones, up to a 32-bit hash collision).
    """
    if is_label_value(text) and not _HASHED_TAIL.search(text):
        return text
    digest = short_hash(text)
    cleaned = _NOT_LABEL_CHAR.sub("-", text)[: LABEL_VALUE_MAX_LENGTH - HASH_LENGTH - 1]
    cleaned = cleaned.strip("-_.")
    return f"{cleaned}-{digest}" if cleaned else digest


def kernel_labels(kernel_id: str) -> dict[str, str]:
    """The labels of every object created for kernel ``kernel_id`` (a new dict each call)."""
    if not is_label_value(kernel_id) or not kernel_id:
        raise ValueError(f"kernel id {kernel_id!r} cannot be a label value")
    return {APP_LABEL: APP, COMPONENT_LABEL: KERNEL_COMPONENT, KERNEL_ID_LABEL: kernel_id}


def kernel_selector(kernel_id: str | None = None) -> str:
    """The label selector for kernel pods: all of them, or those of ``kernel_id``.

    Used by the informer (all kernels) and by lookups of one kernel's objects.
    """
    selector = f"{APP_LABEL}={APP},{COMPONENT_LABEL}={KERNEL_COMPONENT}"
    if kernel_id is not None:
        kernel_labels(kernel_id)  # validates
        selector += f",{KERNEL_ID_LABEL}={kernel_id}"
    return selector


def with_labels(labels: Mapping[str, object] | None, forced: Mapping[str, str]) -> dict[str, str]:
    """``labels`` (a template's) made valid, with ``forced`` laid over them.

    Values that are not valid label values (a template's ``$kernel_username``
    rendered into a label, for instance) are replaced by
    :func:`safe_label_value` of their text; non-string scalars become their
    YAML-style text first (``true``, ``3``).  Keys are template-author text and
    must already be valid (:class:`TemplateError` otherwise).
    """
    merged: dict[str, str] = {}
    for key, value in (labels or {}).items():
        if not is_label_key(key):
            raise TemplateError(f"invalid label key {key!r}")
        merged[key] = safe_label_value(_scalar_text(value))
    merged.update(forced)
    return merged


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TemplateError(f"label value {value!r} is not a scalar")
