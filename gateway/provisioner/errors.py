"""Why a kernel launch failed, as the kernel service and the HTTP layer report it.

Every error the provisioner raises from :meth:`~gateway.provisioner.pods.PodProvisioner.launch`
is a :class:`LaunchError`, a :class:`gateway.errors.GatewayError`: ``message``
is a short sentence for the user (the JSON ``message`` of the HTTP answer) and
``status`` the HTTP status to answer with.  By the time one is raised, everything the launch
created has been removed again.
"""

from __future__ import annotations

from gateway.errors import GatewayError


class LaunchError(GatewayError):
    """A kernel could not be launched (500 unless a subclass says otherwise)."""

    left_behind: bool = False
    """Set by the provisioner when the failed launch could not delete everything it had created (the API
    refused): the kernel service keeps the kernel's record for the lease holder to delete the rest."""


class InvalidLaunch(LaunchError):
    """A request value cannot make a kernel: bad ``KERNEL_NAMESPACE``, quantity, uid, missing namespace..."""

    status = 400


class MissingServiceAccount(InvalidLaunch):
    """The pod was refused because its service account does not exist in its namespace (yet)."""

    def __init__(self, message: str, *, namespace: str, account: str) -> None:
        super().__init__(message)
        self.namespace = namespace
        self.account = account


class LaunchForbidden(LaunchError):
    """Refused by policy (a prohibited uid/gid) or by the cluster's RBAC for the gateway."""

    status = 403


class LaunchConflict(LaunchError):
    """An object the launch must create already exists (a namespace named for this kernel, say)."""

    status = 409


class PodFailed(LaunchError):
    """The kernel pod ended (or was deleted) before its launcher called back.

    ``container_reason`` and ``exit_code`` are those the kubelet reported for
    the kernel container, when it reported any.
    """

    def __init__(self, message: str, *, container_reason: str = "", exit_code: int | None = None) -> None:
        super().__init__(message)
        self.container_reason = container_reason
        self.exit_code = exit_code


class ImagePullFailed(LaunchError):
    """The node cannot pull the kernel image (``ErrImagePull``, ``ImagePullBackOff``, ``InvalidImageName``)."""


class Unschedulable(LaunchError):
    """No node accepts the pod (``PodScheduled=False``, reason ``Unschedulable``)."""


class LaunchTimeout(LaunchError):
    """The kernel was not ready within the launch timeout.

    Answered with 504 rather than Enterprise Gateway's 500 ("Waited too long
    ..."): the gateway worked, the wait for the kernel's pod ran out, and
    clients and proxies read 504 that way.  The reason names what was awaited.
    """

    status = 504


class ClusterUnavailable(LaunchError):
    """The Kubernetes API did not answer usefully (unavailable, throttling, timing out)."""

    status = 503
