"""Launching kernels as pods and talking to their launchers.

``base`` holds :class:`KernelProvisioner`, the interface the kernel service
is written against, and ``pods`` the :class:`PodProvisioner` implementing it;
``model`` the values passed to and from it, ``spec`` what it needs of a
kernelspec, ``errors`` why a launch fails.  ``placement`` chooses and prepares
a kernel's namespace, ``podbuild`` builds a launch's pod from the kernelspec's
template, ``podstate`` reads a launching pod's state.
``response`` receives the launchers' connection info, ``comm`` sends them
signal and shutdown requests, ``crypto`` holds the gateway's key pairs.
"""

from .base import KernelProvisioner
from .connection import ConnectionInfo
from .errors import (
    ClusterUnavailable,
    ImagePullFailed,
    InvalidLaunch,
    LaunchConflict,
    LaunchError,
    LaunchForbidden,
    LaunchTimeout,
    PodFailed,
    Unschedulable,
)
from .model import LaunchRequest, Placement, ProvisionerSettings, RunningKernel
from .pods import PodProvisioner
from .response import ResponseListener
from .spec import KernelSpecInfo, is_kubernetes_spec, kernel_spec_info

__all__ = [
    "ClusterUnavailable",
    "ConnectionInfo",
    "ImagePullFailed",
    "InvalidLaunch",
    "KernelProvisioner",
    "KernelSpecInfo",
    "LaunchConflict",
    "LaunchError",
    "LaunchForbidden",
    "LaunchRequest",
    "LaunchTimeout",
    "Placement",
    "PodFailed",
    "PodProvisioner",
    "ProvisionerSettings",
    "ResponseListener",
    "RunningKernel",
    "Unschedulable",
    "is_kubernetes_spec",
    "kernel_spec_info",
]
