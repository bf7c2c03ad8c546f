"""What kube-controller-manager runs, for the kinds the gateway's deployment uses.

:class:`~fakes.controllers.manager.ControllerManager` (started by ``fakes.serve``) keeps one
informer per kind it watches, as the manager's own user ``system:kube-controller-manager``, and
runs the controllers, each writing as its own service account in ``kube-system`` (as with
``--use-service-account-credentials``):

- ``deployment`` (with ``rollout``, the rolling-update and recreate arithmetic, ``templates``,
  the ``pod-template-hash`` and revisions, and ``deploymentstatus``): a ReplicaSet per pod
  template, rolled out as the Deployment's strategy allows, and the Deployment's status;
- ``replicaset``: the pods a ReplicaSet owns (created, replaced, deleted) and its status;
- ``endpoints`` (with ``serviceendpoints``, the pods a Service selects and their ports): the
  Endpoints and EndpointSlices of each Service with a selector.

``queue`` (the work queue), ``expectations`` (writes not yet seen in the caches), ``informers``
(the shared caches and their event handlers), ``controller`` (one controller's reconcile loop),
``events`` (Events about the objects) and ``objects`` (owner references, pod readiness) are
what the controllers share.  The room knows the cluster only through
``gateway.cluster.interface``, as a real controller knows only the API.
"""
