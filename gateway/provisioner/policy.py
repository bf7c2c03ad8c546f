"""Which namespaces, service accounts and images a client may give a kernel.

Enterprise Gateway takes ``KERNEL_NAMESPACE`` and ``KERNEL_SERVICE_ACCOUNT_NAME``
as given.  The gateway's own account is bound cluster-wide, and the namespaces
it creates for kernels bind ``kernel-controller`` to their ``default`` account,
so a client naming either would gain rights that are not its own.  The rules:

* a namespace a client names must carry the labels of a kernel namespace an
  operator prepared (``EG_KERNEL_NAMESPACE_SELECTOR``, by default
  ``app=enterprise-gateway,component=kernel``, as the ``kernel-namespace``
  manifest labels ``kernel-ns``);
* it must not be a namespace the gateway created for a kernel (those carry
  a ``kernel_id`` label), nor the gateway's own namespace (``EG_NAMESPACE``:
  ``EG_SHARED_NAMESPACE`` is the operator's switch for running kernels there);
* in any mode, a kernel never runs as the gateway's own service account
  (``EG_SERVICE_ACCOUNT_NAME``) in the gateway's namespace;
* a ``KERNEL_IMAGE`` other than the image its kernelspec names must match one
  of the operator's ``EG_ALLOWED_KERNEL_IMAGES`` patterns (shell-style:
  ``registry.example.com/team/*``; ``*`` allows any image, as Enterprise
  Gateway does).  By default there are none: an image is code the kernel runs
  with the kernel's rights, its service account's included, so which images
  run is the operator's choice, made by installing kernelspecs.

Each refusal is a :class:`~gateway.provisioner.errors.LaunchForbidden` raised
before anything is created.  Called from :mod:`gateway.provisioner.placement`
and (images) :meth:`~gateway.provisioner.pods.PodProvisioner.plan`;
:func:`parse_selector` and :func:`check_image_pattern` also check the settings
at startup (``gateway.config``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from gateway.errors import shown
from gateway.objects.labels import KERNEL_ID_LABEL, is_label_key, is_label_value

from .errors import LaunchForbidden
from .model import LaunchRequest, Placement, ProvisionerSettings


@dataclass(frozen=True)
class Requirement:
    """One term of an equality-based label selector: ``key=value``, ``key!=value``, ``key`` or ``!key``."""

    key: str
    operator: str  # "=", "!=", "exists", "!exists"
    value: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!exists":
            return self.key not in labels
        if self.operator == "=":
            return labels.get(self.key) == self.value
        # "!=" matches objects without the key too, as Kubernetes selectors do
        # (k8s.io/apimachinery/pkg/labels/selector.go, Requirement.Matches).
        return labels.get(self.key) != self.value


def parse_selector(text: str) -> tuple[Requirement, ...]:
    """The requirements of an equality-based label selector (``a=b,c!=d,e,!f``); all must match.

    Raises ``ValueError`` naming the bad term.  Set-based terms (``in``,
    ``notin``) are not accepted.  An empty selector matches every namespace.
    """
    requirements = []
    for raw in text.split(","):
        term = raw.strip()
        if not term:
            if text.strip():
                raise ValueError(f"empty term in label selector {text!r}")
            continue
        requirements.append(_requirement(term))
    return tuple(requirements)


def _requirement(term: str) -> Requirement:
    if term.startswith("!"):
        key, operator, value = term[1:].strip(), "!exists", ""
    elif "!=" in term:
        key, _, value = term.partition("!=")
        operator = "!="
    elif "==" in term:
        key, _, value = term.partition("==")
        operator = "="
    elif "=" in term:
        key, _, value = term.partition("=")
        operator = "="
    else:
        key, operator, value = term, "exists", ""
    key, value = key.strip(), value.strip()
    if " " in key or not is_label_key(key):
        raise ValueError(f"{term!r} is not a label selector term of the form key=value, key!=value, key or !key")
    if not is_label_value(value):
        raise ValueError(f"{value!r} in {term!r} is not a valid label value")
    return Requirement(key, operator, value)


def check_requested_placement(placement: Placement, settings: ProvisionerSettings, *, named_namespace: bool,
                              named_account: bool) -> None:
    """Refuse a placement that would give the kernel the gateway's rights (no I/O).

    Called by :func:`~gateway.provisioner.placement.plan_placement` at a
    kernel's first launch; ``named_namespace``/``named_account``: the client
    set ``KERNEL_NAMESPACE``/``KERNEL_SERVICE_ACCOUNT_NAME``.
    """
    if named_namespace and placement.namespace == settings.gateway_namespace:
        raise LaunchForbidden(
            f"KERNEL_NAMESPACE={placement.namespace} is refused: kernels may not be placed in the gateway's own "
            "namespace (the operator runs kernels there with EG_SHARED_NAMESPACE)"
        )
    in_gateway_namespace = placement.namespace == settings.gateway_namespace
    if in_gateway_namespace and placement.service_account == settings.gateway_service_account:
        variable = "KERNEL_SERVICE_ACCOUNT_NAME" if named_account else "EG_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME"
        raise LaunchForbidden(
            f"{variable}={placement.service_account} is refused: a kernel may not run as the gateway's own "
            f"service account in namespace {placement.namespace}"
        )


def check_named_namespace(namespace: str, labels: Mapping[str, str], settings: ProvisionerSettings) -> None:
    """Refuse a client-named namespace that is a kernel's own or lacks the prepared kernel namespace labels.

    Called by :func:`~gateway.provisioner.placement.check_existing_namespace`
    with the namespace as read from the cluster, at every launch and restart.
    """
    if KERNEL_ID_LABEL in labels:
        raise LaunchForbidden(
            f"KERNEL_NAMESPACE={namespace} is refused: it is a namespace the gateway created for a kernel "
            f"(it has a {KERNEL_ID_LABEL} label)"
        )
    requirements = parse_selector(settings.kernel_namespace_selector)
    if not all(requirement.matches(labels) for requirement in requirements):
        raise LaunchForbidden(
            f"KERNEL_NAMESPACE={namespace} is refused: it is not a prepared kernel namespace "
            f"(its labels do not match EG_KERNEL_NAMESPACE_SELECTOR {settings.kernel_namespace_selector!r})"
        )


CLIENT_IMAGE_VARIABLES = ("KERNEL_IMAGE", "KERNEL_EXECUTOR_IMAGE")
"""The variables through which a client names an image a pod runs (Spark's executors run the second)."""


def check_requested_image(request: LaunchRequest, settings: ProvisionerSettings) -> None:
    """Refuse a client-named image that is not its kernelspec's image nor allowed by the operator (no I/O).

    Called by :meth:`~gateway.provisioner.pods.PodProvisioner.plan` at a kernel's first launch,
    before its record or anything else of it is created.  Every variable of
    :data:`CLIENT_IMAGE_VARIABLES` is checked: a Spark kernel's executors run the image its
    ``KERNEL_EXECUTOR_IMAGE`` names, as much a client's choice as the kernel's own.
    """
    for variable in CLIENT_IMAGE_VARIABLES:
        image = request.env.get(variable) or ""
        if not image or image == request.spec.image:
            continue
        if any(fnmatchcase(image, pattern) for pattern in settings.allowed_kernel_images):
            continue
        allowed = ", ".join(settings.allowed_kernel_images) or "none"
        raise LaunchForbidden(
            f"{variable}={shown(image)} is refused: kernelspec {request.spec.name} runs {request.spec.image}, "
            f"and the operator allows other images only when they match EG_ALLOWED_KERNEL_IMAGES "
            f"(patterns: {allowed})"
        )


def check_image_pattern(pattern: str) -> None:
    """Raise ``ValueError`` for an ``EG_ALLOWED_KERNEL_IMAGES`` entry that can match no image reference."""
    if not pattern or any(c.isspace() or not c.isprintable() for c in pattern):
        raise ValueError(f"{pattern!r} is not an image pattern (no spaces; e.g. registry.example.com/team/*)")
