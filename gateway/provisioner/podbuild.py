"""The objects a launch creates: the kernelspec's pod template rendered for one kernel, before any call.

:class:`PodBuilder` is the provisioner's (:class:`~gateway.provisioner.pods.PodProvisioner`, at
every launch and relaunch): it reads the kernelspec's ``scripts/kernel-pod.yaml`` (or EG's
``kernel-pod.yaml.j2``) off the event loop (kept until its folder changes, given a
:class:`~gateway.filewatch.FolderWatch`), lays what the launcher in the pod needs (the response
address and key, EG's variables) over the request's env, and has ``gateway.objects`` build the pod
and its companions.  A value the request cannot carry is a 4xx here, with nothing created yet.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from gateway.filewatch import FolderWatch, WatchedReads
from gateway.objects import (
    ForbiddenKernelRequest,
    InvalidKernelRequest,
    KernelObjects,
    TemplateError,
    kernel_objects,
)
from gateway.objects.egtemplate import eg_pod_env

from .errors import InvalidLaunch, LaunchError, LaunchForbidden
from .model import LaunchRequest, Placement, ProvisionerSettings
from .podtemplate import template_objects
from .response import ResponseListener
from .spec import JINJA_TEMPLATE_PATH, TEMPLATE_PATH, PodTemplateFile, read_pod_template

POD_IP_ENV = "KERNEL_POD_IP"
"""The launcher binds the kernel to this address: the pod's own, from the downward API."""
GATEWAY_NAMESPACE_ANNOTATION = "kernelgate.io/gateway-namespace"
"""On every kernel pod: the namespace of the gateway that launched it, whose replicas may collect it as a leftover."""


class PodBuilder:
    """Builds each launch's objects from the settings and the started response listener (see the module docstring)."""

    def __init__(self, responses: ResponseListener, settings: ProvisionerSettings,
                 watch: FolderWatch | None = None) -> None:
        self._responses = responses
        self._settings = settings
        self._templates: WatchedReads[Path, PodTemplateFile] = WatchedReads(watch)
        """Each kernelspec's template as read, kept while nothing in its folder or ``scripts/`` changes."""

    async def build(self, request: LaunchRequest, placement: Placement) -> KernelObjects:
        """The pod (and companions) for this launch, from the kernelspec's template; nothing is created yet.

        Called by the provisioner at the start of every launch.  Raises :class:`InvalidLaunch` or
        :class:`LaunchForbidden` for request values that cannot make the pod, :class:`LaunchError`
        for a template that cannot be read or used.
        """
        spec = request.spec
        try:
            folder = spec.resource_dir
            template_file = await self._templates.read(folder, [folder, (folder / TEMPLATE_PATH).parent],
                                                       functools.partial(read_pod_template, folder))
        except OSError as exc:
            raise LaunchError(f"kernelspec {spec.name}: cannot read {TEMPLATE_PATH} (or {JINJA_TEMPLATE_PATH}): "
                              f"{exc.strerror or exc}") from exc
        image = request.env.get("KERNEL_IMAGE") or spec.image  # a client's KERNEL_IMAGE wins, as in EG
        try:
            launcher_env = self._launcher_env(request, image, placement)
            template = template_objects(template_file, request, placement, image=image, launcher_env=launcher_env)
            objects = kernel_objects(
                template,
                kernel_id=request.kernel_id,
                username=request.username,
                namespace=placement.namespace,
                service_account=placement.service_account,
                image=image,
                env=request.env,
                launcher_env=launcher_env,
                language=spec.language,
                response_address=self._response_address(),
                connection_filename=f"kernel-{request.kernel_id}.json",
                spark_context_initialization_mode=spec.spark_context_mode,
                prohibited_uids=self._settings.prohibited_uids,
                prohibited_gids=self._settings.prohibited_gids,
                name=placement.pod_name,
            )
        except ForbiddenKernelRequest as exc:
            raise LaunchForbidden(str(exc)) from exc
        except InvalidKernelRequest as exc:
            raise InvalidLaunch(str(exc)) from exc
        except TemplateError as exc:
            raise LaunchError(f"kernelspec {spec.name}: {exc}") from exc
        except ValueError as exc:
            raise InvalidLaunch(str(exc)) from exc
        pod = _with_pod_ip_env(objects.pod)
        annotations = dict(pod["metadata"].get("annotations") or {})
        annotations[GATEWAY_NAMESPACE_ANNOTATION] = self._settings.gateway_namespace
        pod = {**pod, "metadata": {**pod["metadata"], "annotations": annotations}}
        return KernelObjects(pod=pod, companions=objects.companions)

    def _launcher_env(self, request: LaunchRequest, image: str, placement: Placement) -> dict[str, str]:
        """What the launcher in the pod needs, laid over the request's env (never the gateway's own).

        Enterprise Gateway's images read some of it under EG's names: :func:`eg_pod_env`.
        """
        address = self._response_address()
        env = {
            "EG_RESPONSE_ADDRESS": address,
            "RESPONSE_ADDRESS": address,
            "KERNEL_RESPONSE_KEY": self._responses.public_key,
            "KERNEL_LANGUAGE": request.spec.language,
            "SPARK_CONTEXT_INITIALIZATION_MODE": request.spec.spark_context_mode,
            "EG_KUBERNETES_KERNEL_IMAGE": image,
            "KERNEL_LAUNCH_TIMEOUT": f"{request.timeout:g}",
        }
        legacy = self._responses.legacy_public_key
        if legacy is not None:
            env["PUBLIC_KEY"] = legacy
        env.update(eg_pod_env(kernel_name=request.spec.name, pod_name=placement.pod_name, image=image,
                              spark_context_mode=request.spec.spark_context_mode, port_range=self._settings.port_range,
                              kernel_class_name=request.spec.kernel_class_name))
        return env

    def _response_address(self) -> str:
        if self._settings.response_address:
            return self._settings.response_address
        if self._responses.host in ("", "0.0.0.0", "::"):
            raise LaunchError("the gateway's response address is not configured (EG_RESPONSE_IP)")
        return f"{self._responses.host}:{self._responses.port}"


def _with_pod_ip_env(pod: dict[str, Any]) -> dict[str, Any]:
    """``pod`` with the first container's ``KERNEL_POD_IP`` read from ``status.podIP``, whatever env said."""
    spec = dict(pod["spec"])
    first = dict(spec["containers"][0])
    env = [entry for entry in first.get("env") or [] if entry.get("name") != POD_IP_ENV]
    env.append({"name": POD_IP_ENV, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}})
    first["env"] = env
    spec["containers"] = [first, *spec["containers"][1:]]
    return {**pod, "spec": spec}
