"""Pure builders for the Kubernetes objects of a kernel: names, labels, namespace, role binding, pod.

Nothing here does I/O or mutates its arguments; every function returns new
wire-format dicts for the provisioner to send through the cluster interface.
"""

from gateway.objects.errors import ForbiddenKernelRequest, InvalidKernelRequest, TemplateError
from gateway.objects.labels import kernel_labels, kernel_selector, safe_label_value
from gateway.objects.names import is_dns1123_label, is_dns1123_subdomain, kernel_resource_name, safe_label
from gateway.objects.namespace import kernel_namespace, kernel_role_binding
from gateway.objects.pod import KernelObjects, kernel_objects, kernel_pod, owned_by
from gateway.objects.template import parse_template, render

__all__ = [
    "ForbiddenKernelRequest",
    "InvalidKernelRequest",
    "KernelObjects",
    "TemplateError",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "kernel_labels",
    "kernel_namespace",
    "kernel_objects",
    "kernel_pod",
    "kernel_resource_name",
    "kernel_role_binding",
    "kernel_selector",
    "owned_by",
    "parse_template",
    "render",
    "safe_label",
    "safe_label_value",
]
