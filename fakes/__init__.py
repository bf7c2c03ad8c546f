"""The simulated Kubernetes cluster, in rooms like a real cluster's components.

Top to bottom (``pyproject.toml``'s import-linter contracts keep imports flowing down):

- :mod:`fakes.serve`: the composition that runs the API server, the controller manager, a node
  agent and kube-proxy together (``kernelgate cluster``); ``fakes.gateway_rbac`` installs the
  manifests' RBAC into a cluster.
- :mod:`fakes.apiserver` (the wire): the Kubernetes REST API over HTTPS, serving the store
  through :class:`fakes.memory.MemoryCluster` as each caller.
- :mod:`fakes.node`: the node agent (a kubelet), which turns pods bound to its node into local
  processes, and kube-proxy (``fakes.node.proxy``).  It knows the cluster only through
  ``gateway.cluster.interface``, as a kubelet knows only the API server.
- :mod:`fakes.controllers`: what kube-controller-manager runs for Deployments, ReplicaSets and
  Services' endpoints; it too knows the cluster only through ``gateway.cluster.interface``.
  The wire, the node and the controllers never import each other.
- :mod:`fakes.memory`: the in-process front, ``gateway.cluster.interface.Cluster`` for one
  identity: injected faults, then RBAC, then the store.
- :mod:`fakes.state`: the store and everything an API server does to objects (versions,
  validation, defaulting, patching, selectors, watches, deletion, garbage collection).
- :mod:`fakes.auth`: identities and tokens, the RBAC authorizer and its bootstrap policy,
  escalation checks, access-review decisions, impersonation.

``docs/architecture.md`` draws the same map with the gateway beside it.
"""
