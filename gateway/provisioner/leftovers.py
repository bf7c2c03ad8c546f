"""Telling whether a recorded pod is alive, and deleting what an abandoned kernel left in the cluster.

Used by :class:`~gateway.provisioner.pods.PodProvisioner` for the lease holder's duties: a kernel
whose record says ``running`` on a pod the informer shows ended (or does not show at all: then
one ``get`` settles it, since the informer may lag the record) is restarted; a launch or
shutdown abandoned by a replica that died, and a kernel pod left without a record, are
deleted.  Deletions go only to objects labelled with the kernel's id, so a namespace of the
same name that someone else made is never touched.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Any

from gateway.cluster.informer import Informer
from gateway.cluster.interface import Cluster, ClusterError, NotFound
from gateway.cluster.resources import TERMINAL_POD_PHASES
from gateway.objects.labels import KERNEL_ID_LABEL

from .apicalls import CLEANUP_CALL_TIMEOUT, delete_quietly
from .model import Placement
from .podstate import phase

log = logging.getLogger("gateway.provisioner")


class PodLife(enum.Enum):
    """A recorded pod as the informer shows it."""

    ALIVE = "alive"
    ENDED = "ended"
    """Failed, succeeded or being deleted, or replaced by another pod of the same name."""
    UNSEEN = "unseen"
    """Not in the cache: deleted, or created so recently that the watch has not shown it yet."""


def pod_life(pod: dict[str, Any] | None, uid: str) -> PodLife:
    """How the cached ``pod`` (the one named like the recorded pod, or ``None``) stands for pod ``uid``."""
    if pod is None:
        return PodLife.UNSEEN
    meta = pod.get("metadata") or {}
    if meta.get("uid") != uid:
        return PodLife.UNSEEN
    if meta.get("deletionTimestamp") or phase(pod) in TERMINAL_POD_PHASES:
        return PodLife.ENDED
    return PodLife.ALIVE


async def pod_still_exists(cluster: Cluster, placement: Placement, uid: str) -> bool:
    """Whether pod ``uid`` exists and has not ended, read from the API; an unanswered read counts as existing."""
    try:
        pod = await asyncio.wait_for(cluster.get("pods", placement.pod_name, namespace=placement.namespace),
                                     CLEANUP_CALL_TIMEOUT)
    except NotFound:
        return False
    except (ClusterError, asyncio.TimeoutError) as error:
        log.warning("cannot read pod %s/%s (%s); taking it to be alive", placement.namespace, placement.pod_name,
                    error or type(error).__name__)
        return True
    return pod_life(pod, uid) is PodLife.ALIVE


async def collect_kernel_objects(cluster: Cluster, pods: Informer, kernel_id: str, placement: Placement,
                                 cluster_role: str) -> bool:
    """Delete the kernel's role binding and namespace when the gateway owns them, then its pod: each only if
    labelled for ``kernel_id``.  Never raises a cluster error (each failure is logged).

    Returns whether nothing of the kernel is left.  The pod goes last, and stays when its namespace
    could not be deleted: while anything of the kernel is left, its pod (or its record) leads the
    lease holder's collection back to it.
    """
    namespace, name = placement.namespace, placement.pod_name
    if placement.owns_namespace and not await _collect_namespace(cluster, kernel_id, namespace, cluster_role):
        return False
    pod = pods.get(namespace, name)
    if pod is not None and _labelled(pod, kernel_id):
        return await delete_quietly(cluster, "pods", name, namespace=namespace, grace_period_seconds=0)
    return True


async def _collect_namespace(cluster: Cluster, kernel_id: str, namespace: str, cluster_role: str) -> bool:
    """Delete the kernel's own namespace and role binding if labelled for it; whether none of it is the kernel's now."""
    try:
        found = await asyncio.wait_for(cluster.get("namespaces", namespace), CLEANUP_CALL_TIMEOUT)
    except NotFound:
        return True
    except (ClusterError, asyncio.TimeoutError) as error:
        log.error("cannot read namespace %s of kernel %s (%s); trying again later", namespace, kernel_id,
                  error or type(error).__name__)
        return False
    if not _labelled(found, kernel_id):
        log.warning("namespace %s is not labelled for kernel %s; leaving it", namespace, kernel_id)
        return True
    await delete_quietly(cluster, "rolebindings", cluster_role, namespace=namespace)
    return await delete_quietly(cluster, "namespaces", namespace)


def _labelled(obj: dict[str, Any], kernel_id: str) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(KERNEL_ID_LABEL) == kernel_id
