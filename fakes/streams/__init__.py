"""Kubernetes streaming protocols, shared by the API server and the node agent's kubelet API.

``spdy`` (SPDY/3.1 sessions; ``spdy_dictionary``, its header-compression dictionary),
``channels`` (the ``*.channel.k8s.io`` websocket protocols), ``remotecommand`` (exec and attach
over either), ``portforward`` (port-forward over either) and ``handler`` (a tornado handler that
upgrades one request to whichever of them its client speaks and streams to a node's pods).
The simulated API server (``fakes.apiserver.streaming``) serves them to clients of
``pods/exec``, ``pods/attach`` and ``pods/portforward``; the node agent's kubelet API
(``fakes.node.kubeletapi``) serves them to a real API server that proxies those requests.
Nothing here knows the store, auth or who asked: that is the caller's.
"""
