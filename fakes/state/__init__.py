"""The cluster's state: what etcd and the API server's registry are on a real cluster.

:class:`fakes.state.store.Store` holds wire-format objects and gives them the API server's
semantics; its neighbours each hold one concern of it: ``validation`` and ``defaults`` (what
the registry checks and fills in), ``datafields`` and ``microtime`` (Secret and ConfigMap data
and MicroTimes as the typed decoder reads them), ``patching`` (JSON, merge and strategic merge patches),
``selectors`` (label and field selectors), ``paging`` (a limited list's continue tokens),
``watching`` (the event log behind watches),
``lifecycle`` (deletion, finalizers, namespace termination and garbage collection),
``subresources`` (binding, logs, tokens), ``nodeports`` and ``faults`` (what tests inject).
Nothing here authorizes a call: the fronts above (``fakes.memory``, ``fakes.apiserver``) do.
"""
