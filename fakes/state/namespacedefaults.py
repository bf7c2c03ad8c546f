"""What every active namespace holds without anyone asking: its ``default`` service account and the
``kube-root-ca.crt`` ConfigMap.

:class:`NamespaceDefaults` is a mixin of ``fakes.state.store.Store``.  On a real
cluster two controllers of kube-controller-manager keep these objects; here they
run inside the store's settling (``Lifecycle._settle``), right after the write
that gives them work, so a new namespace has both at once (a real cluster adds
them a moment later):

* the service-account controller
  (``pkg/controller/serviceaccount/serviceaccounts_controller.go``): a namespace's
  ``default`` account, created again when deleted;
* the root-CA publisher (``pkg/controller/certificates/rootcacertpublisher/publisher.go``
  ``syncNamespace``): ``kube-root-ca.crt`` with ``data.ca.crt`` the CA that signs
  the API server's serving certificate and the ``kubernetes.io/description``
  annotation; created again when deleted, its ``data`` and annotation restored
  when someone changes them (other labels and annotations are left alone).

The CA is the one :meth:`NamespaceDefaults.publish_root_ca` is given by the API
server serving the store (``fakes.apiserver.server.ApiServer``).  A store no API
server serves has no CA: it publishes an empty ``ca.crt``, as kube-controller-
manager does when its client configuration carries no CA data and no
``--root-ca-file`` is given (``cmd/kube-controller-manager/app/certificates.go``
``getKubeAPIServerCAFileContents``).
"""

from __future__ import annotations

from typing import Any

from fakes.state import managedfields
from fakes.state.objects import clone
from gateway.cluster.interface import ClusterError
from gateway.cluster.resources import RESOURCES, ResourceType

ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the "
    "internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of "
    "Kubernetes clusters."
)
"""publisher.go ``Description``, word for word."""
CONTROLLER_MANAGER = "kube-controller-manager"
"""The field manager of the publisher's writes (the controller manager's user agent)."""

_CONFIGMAPS = RESOURCES["configmaps"]


class NamespaceDefaults:
    """The service-account controller and the root-CA publisher (mixed into ``Store``)."""

    # Provided by Store:
    _objects: dict[str, dict[tuple[str, str], dict[str, Any]]]
    _pending_default_accounts: set[str]
    _pending_root_ca: set[str]
    _root_ca: str

    def create(self, rt: ResourceType, obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def _update(self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any],
                subresource: str | None, applied: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def _settle(self) -> None:
        raise NotImplementedError

    def publish_root_ca(self, pem: bytes) -> None:
        """Publish ``pem`` in every namespace's ``kube-root-ca.crt`` from now on.

        Called by the API server that serves this store once it has made its CA (before it serves a
        request); the ConfigMaps already published are updated, as a publisher started with another CA does.
        """
        self._root_ca = pem.decode()
        self._pending_root_ca.update(name for (_ns, name) in self._objects["namespaces"])
        self._settle()

    def _namespace_created(self, namespace: str) -> None:
        """A new namespace: both controllers have work there (the store's create calls this)."""
        self._pending_default_accounts.add(namespace)
        self._pending_root_ca.add(namespace)

    def _written(self, rt: ResourceType, namespace: str, name: str) -> None:
        """Every stored write or removal: the controllers' watches (the store's ``_put`` and ``_remove``)."""
        if rt.plural == "serviceaccounts" and name == "default":
            self._pending_default_accounts.add(namespace)
        elif rt.plural == "configmaps" and name == ROOT_CA_CONFIGMAP:
            self._pending_root_ca.add(namespace)

    def _keep_namespace_defaults(self) -> None:
        """Run both controllers over the namespaces given them work; part of the store's settling."""
        while self._pending_default_accounts or self._pending_root_ca:
            if self._pending_default_accounts:
                self._ensure_default_account(self._pending_default_accounts.pop())
            else:
                self._publish_root_ca(self._pending_root_ca.pop())

    def _active(self, namespace: str) -> bool:
        ns = self._objects["namespaces"].get(("", namespace))
        return ns is not None and not ns["metadata"].get("deletionTimestamp")

    def _ensure_default_account(self, namespace: str) -> None:
        """Every active namespace has a ``default`` service account: deleted, it comes back."""
        if self._active(namespace) and (namespace, "default") not in self._objects["serviceaccounts"]:
            self.create(RESOURCES["serviceaccounts"], {"metadata": {"name": "default"}}, namespace)

    def _publish_root_ca(self, namespace: str) -> None:
        """publisher.go ``syncNamespace``: create the ConfigMap, or restore its data and description."""
        if not self._active(namespace):
            return  # a create there would be refused (NamespaceTerminating), which the publisher ignores
        data = {"ca.crt": self._root_ca}
        stored = self._objects["configmaps"].get((namespace, ROOT_CA_CONFIGMAP))
        token = managedfields.WRITER.set(managedfields.Writer(CONTROLLER_MANAGER))
        try:
            if stored is None:
                self.create(_CONFIGMAPS, {"metadata": {"name": ROOT_CA_CONFIGMAP,
                                                       "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                                          "data": data}, namespace)
                return
            annotations = stored["metadata"].get("annotations") or {}
            if stored.get("data") == data and annotations.get(DESCRIPTION_ANNOTATION):
                return
            new = clone(stored)
            new["data"] = data  # the whole of data: keys others added go
            new["metadata"]["annotations"] = {**annotations, DESCRIPTION_ANNOTATION: DESCRIPTION}
            self._update(_CONFIGMAPS, stored, new, None)
        except ClusterError:
            pass  # the publisher retries on its next event; the store's next write to the map brings one
        finally:
            managedfields.WRITER.reset(token)
