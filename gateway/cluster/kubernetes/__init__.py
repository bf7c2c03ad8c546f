"""The real cluster adapter: the :class:`~gateway.cluster.interface.Cluster` over the official ``kubernetes`` client.

This package is the only part of the gateway that imports ``kubernetes``.  It uses the
client for what it does well (reading kubeconfig and in-cluster credentials, TLS, bearer
token refresh, the urllib3 connection pool) and nothing else: requests go through the
generic ``ApiClient.call_api`` with paths from :mod:`gateway.cluster.resources`, and bodies
stay wire-format JSON (the generated model classes are slow and drop fields they do not know).

The client is synchronous, so every request runs in a bounded pool of worker threads and
the event loop only awaits; a watch holds a thread of its own that hands decoded events to
the loop.  Every request has a connect and a read timeout.  Failures become our errors
(:mod:`gateway.cluster.status`), raised from the library error that caused them; HTTP
status codes never leave here.

* :mod:`.adapter`: :class:`KubernetesCluster`, the interface's calls and the worker pool;
* :mod:`.transport`: one request, built, authenticated and sent, its failure turned into ours;
* :mod:`.watch`: watch streams and their reader threads;
* :mod:`.credentials`: where the credentials are read from, and reading them again as they rotate.
"""

from .adapter import DEFAULT_TIMEOUT, DEFAULT_WORKERS, KubernetesCluster
from .transport import THREAD_PREFIX, pool_size

__all__ = ["DEFAULT_TIMEOUT", "DEFAULT_WORKERS", "THREAD_PREFIX", "KubernetesCluster", "pool_size"]
