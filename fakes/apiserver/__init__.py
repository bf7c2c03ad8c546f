"""The wire: the simulated cluster's Kubernetes REST API over HTTPS.

``server`` (the tornado application: authentication, impersonation, routing), ``paths`` (what a
URL names), ``rest`` (verbs to cluster calls), ``decoding`` and ``protobuf`` (request bodies),
``tables`` (``kubectl get`` output), ``discovery`` and ``openapi``, ``watchstream`` (watch
responses), ``reviews`` (access reviews and ``whoami``), ``tls`` and ``kubeconfig`` (how
clients reach and trust it).  It serves whatever :class:`fakes.memory.MemoryCluster` allows
the authenticated caller.
"""
