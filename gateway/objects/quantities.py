"""A kernel container's resource requests and limits, from ``KERNEL_CPUS``, ``KERNEL_MEMORY``, ``KERNEL_GPUS``.

Enterprise Gateway's pod template turns ``KERNEL_CPUS``, ``KERNEL_MEMORY`` and
``KERNEL_GPUS`` into requests and their ``*_LIMIT`` twins into limits (GPUs
as ``nvidia.com/gpu``), passing the client's text through unchecked, so a
typo surfaced as an API error after the launch had begun.  Here each value is
checked before anything is created and a bad one raises
:class:`InvalidKernelRequest` (400).

Quantity syntax is that of k8s.io/apimachinery/pkg/api/resource/quantity.go
(without a sign: resources are never negative).  Request/limit rules are the
API server's ``validateResourceRequirements`` (pkg/apis/core/validation/
validation.go): a request may not exceed its limit, and an extended resource
such as a GPU is a whole number whose request equals its limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Context, Decimal
from typing import Any

from gateway.objects.errors import InvalidKernelRequest

GPU_RESOURCE = "nvidia.com/gpu"
RESOURCE_ENV = (
    ("cpu", "KERNEL_CPUS", "KERNEL_CPUS_LIMIT"),
    ("memory", "KERNEL_MEMORY", "KERNEL_MEMORY_LIMIT"),
    (GPU_RESOURCE, "KERNEL_GPUS", "KERNEL_GPUS_LIMIT"),
)
"""(resource, request variable, limit variable) for every resource a client may size."""

_MAX_QUANTITY_LENGTH = 32
_QUANTITY = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>[eE][+-]?[0-9]{1,3}|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_EXACT = Context(prec=200)


def parse_quantity(text: str) -> Decimal:
    """The exact value of a Kubernetes quantity such as ``500m``, ``1.5``, ``2Gi`` or ``1e3``.

    Raises ``ValueError`` for anything else (signs, spaces, units like ``GB``).
    """
    match = _QUANTITY.fullmatch(text) if len(text) <= _MAX_QUANTITY_LENGTH else None
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number = Decimal(match["number"])
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return _EXACT.multiply(number, Decimal(1024) ** _BINARY[suffix])
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        return _EXACT.scaleb(number, int(suffix[1:]))
    return _EXACT.scaleb(number, _DECIMAL.get(suffix, 0))


def container_resources(env: Mapping[str, str], template: Mapping[str, Any] | None) -> dict[str, Any]:
    """The kernel container's ``resources``: the template's, with the client's ``KERNEL_*`` sizes laid over.

    Called by ``gateway.objects.pod`` while building the pod.  An empty
    variable counts as unset (clients forward every ``KERNEL_*`` they have).
    Raises :class:`InvalidKernelRequest` for a malformed quantity, a GPU count
    that is not whole, GPU request and limit that differ, or a request above
    its limit.  ``env`` and ``template`` are not modified.
    """
    result = {key: value for key, value in (template or {}).items() if key not in ("requests", "limits")}
    requests = dict((template or {}).get("requests") or {})
    limits = dict((template or {}).get("limits") or {})
    for resource, request_var, limit_var in RESOURCE_ENV:
        request = _client_quantity(env, request_var)
        limit = _client_quantity(env, limit_var)
        if resource == GPU_RESOURCE:
            count = _gpu_count(env, request_var, request, limit_var, limit)
            if count is not None:
                requests[resource] = limits[resource] = count
            continue
        if request is not None:
            requests[resource] = request
        if limit is not None:
            limits[resource] = limit
        _check_request_within_limit(resource, requests.get(resource), limits.get(resource), request_var, limit_var)
    if requests:
        result["requests"] = requests
    if limits:
        result["limits"] = limits
    return result


def _client_quantity(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or value == "":
        return None
    try:
        parse_quantity(value)
    except ValueError:
        raise InvalidKernelRequest(
            f"{name}={_shown(value)} is not a Kubernetes quantity (for example 500m, 2, 512Mi, 4Gi)"
        ) from None
    return value


def _gpu_count(env: Mapping[str, str], request_var: str, request: str | None, limit_var: str, limit: str | None) -> str | None:
    for name, value in ((request_var, request), (limit_var, limit)):
        if value is not None and parse_quantity(value) != parse_quantity(value).to_integral_value():
            raise InvalidKernelRequest(f"{name}={_shown(value)} must be a whole number of GPUs")
    if request is not None and limit is not None and parse_quantity(request) != parse_quantity(limit):
        raise InvalidKernelRequest(
            f"{request_var}={_shown(request)} and {limit_var}={_shown(limit)} differ: GPUs cannot be overcommitted"
        )
    return limit if limit is not None else request


def _check_request_within_limit(resource: str, request: Any, limit: Any, request_var: str, limit_var: str) -> None:
    if request is None or limit is None:
        return
    try:
        too_big = parse_quantity(str(request)) > parse_quantity(str(limit))
    except ValueError:
        return  # a template value we cannot read: the API server will judge it
    if too_big:
        raise InvalidKernelRequest(
            f"the {resource} request {_shown(request)} ({request_var}) exceeds its limit {_shown(limit)} ({limit_var})"
        )


def _shown(value: object) -> str:
    text = repr(str(value))
    return text if len(text) <= 40 else text[:37] + "...'"
