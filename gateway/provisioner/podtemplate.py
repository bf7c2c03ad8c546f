"""A launch's pod template, in either format a kernelspec may hold, as objects ready for ``kernel_objects``.

The provisioner reads the kernelspec's template at every launch
(:func:`gateway.provisioner.spec.read_pod_template`, off the event loop) and
calls :func:`template_objects`:

* ``scripts/kernel-pod.yaml``, this gateway's format, is parsed with its
  ``$variables`` left for ``gateway.objects.pod.kernel_objects`` to fill in
  (once per distinct text: the same file is not parsed again at the next launch);
* ``scripts/kernel-pod.yaml.j2``, Enterprise Gateway 3.x's, is rendered for
  this kernel with EG's variables (``gateway.objects.egtemplate``) in the
  sandbox of ``gateway.objects.jinja``, where no value can become template
  code or YAML structure, and its one Pod is handed on as literal text.

Either way ``kernel_objects`` then forces what the gateway relies on (name,
namespace, labels, service account, security context, env, resources).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from gateway.objects.egtemplate import eg_template_values
from gateway.objects.jinja import render_jinja_template
from gateway.objects.template import literal_objects, parse_template

from .model import LaunchRequest, Placement
from .spec import PodTemplateFile


def template_objects(
    template: PodTemplateFile,
    request: LaunchRequest,
    placement: Placement,
    *,
    image: str,
    launcher_env: Mapping[str, str],
) -> tuple[dict[str, Any], ...]:
    """The template's objects for :func:`gateway.objects.pod.kernel_objects` (see the module docstring).

    ``launcher_env`` is what the provisioner lays over the request's env in
    the pod.  Raises ``TemplateError`` for a template that cannot be used and
    ``InvalidKernelRequest`` for client values EG's variables cannot carry.
    """
    source = f"{request.spec.name}/{template.path}"
    if not template.is_jinja:
        return _parsed(template.text, source)
    values = eg_template_values(
        {**request.env, **launcher_env},
        kernel_id=request.kernel_id,
        username=request.username,
        namespace=placement.namespace,
        service_account=placement.service_account,
        pod_name=placement.pod_name,
        image=image,
    )
    return literal_objects([render_jinja_template(template.text, values, source=source)])


@lru_cache(maxsize=64)
def _parsed(text: str, source: str) -> tuple[dict[str, Any], ...]:
    """:func:`parse_template` of one template text, parsed once: a kernelspec's file reads the same launch after
    launch.  Sharing the objects is safe because ``kernel_objects`` renders new ones and never modifies these."""
    return parse_template(text, source=source)
