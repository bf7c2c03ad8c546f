"""The real cluster adapter: the :class:`~gateway.cluster.interface.Cluster` over HTTPS to the API server.

This package is the only part of the gateway that imports ``kubernetes``, and it uses that
client for one thing: reading kubeconfig and in-cluster credentials (tokens, exec plugins, CA
and client certificates).  Requests go through an HTTP/1.1 client of its own on the event loop
(no thread per request, no urllib3): a pool of kept-alive TLS connections, paths from
:mod:`gateway.cluster.resources`, bodies as wire-format JSON (the generated model classes are
slow and drop fields they do not know).  Every request has a connect and a read timeout.
Failures become our errors (:mod:`gateway.cluster.status`); HTTP status codes never leave here.

* :mod:`.adapter`: :class:`KubernetesCluster`, the interface's calls;
* :mod:`.transport`: one request, sent with the current credentials, retried where safe, its failure ours;
* :mod:`.pool`: the kept-alive connections; :mod:`.connection`: one connection (proxy tunnel, TLS);
* :mod:`.wire`: HTTP/1.1 heads and bodies, parsed;
* :mod:`.watch`: watch streams (bodies to and from JSON bytes: :mod:`gateway.jsoncodec`);
* :mod:`.credentials`: where the credentials are read from, and reading them again as they rotate;
  :mod:`.endpoint`: the server, TLS context and token a set of credentials gives.
"""

from .adapter import DEFAULT_TIMEOUT, DEFAULT_WORKERS, KubernetesCluster

__all__ = ["DEFAULT_TIMEOUT", "DEFAULT_WORKERS", "KubernetesCluster"]
