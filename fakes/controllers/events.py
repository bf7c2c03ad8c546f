"""Events the controllers post about the objects they act on (what ``kubectl describe`` lists).

As client-go's event recorder: best effort, a failure is logged and never fails the
reconciliation that recorded it.  Each controller records as its own component
(``deployment-controller``, ``replicaset-controller``...) through its own client.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

from fakes.controllers.objects import meta, now
from gateway.cluster.interface import Cluster, ClusterError, Obj

log = logging.getLogger(__name__)

API_TIMEOUT = 10.0
_sequence = itertools.count()


class EventRecorder:
    """Posts core/v1 Events as ``component`` through ``cluster``."""

    def __init__(self, cluster: Cluster, component: str) -> None:
        self._cluster = cluster
        self._component = component

    async def record(self, obj: Obj, event_type: str, reason: str, message: str) -> None:
        """An Event about ``obj`` (``Normal``/``Warning``, a CamelCase ``reason``, a sentence)."""
        namespace = meta(obj).get("namespace") or "default"
        stamp = now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta(obj)['name']}.{time.time_ns() + next(_sequence):x}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", ""), "kind": obj.get("kind", ""), "namespace": namespace,
                "name": meta(obj)["name"], "uid": meta(obj).get("uid", ""),
                "resourceVersion": meta(obj).get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": {"component": self._component},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": self._component,
            "reportingInstance": "",
        }
        try:
            await asyncio.wait_for(self._cluster.create("events", event, namespace=namespace), API_TIMEOUT)
        except (ClusterError, asyncio.TimeoutError) as err:
            log.debug("event %s about %s/%s not recorded: %s", reason, namespace, meta(obj)["name"], err)
