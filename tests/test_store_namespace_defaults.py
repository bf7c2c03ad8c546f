"""What the store's controllers keep in every namespace: the root-CA ConfigMap (and the ``default`` account,
tested with the store's other behaviour), as the in-process cluster and the simulated API server show them."""

from __future__ import annotations

import pytest

from fakes.state.namespacedefaults import DESCRIPTION, ROOT_CA_CONFIGMAP
from fakes.state.store import Store
from gateway.cluster.interface import NotFound
from gateway.cluster.resources import RESOURCES

CMS, NS = RESOURCES["configmaps"], RESOURCES["namespaces"]
CA = b"-----BEGIN CERTIFICATE-----\nsomething\n-----END CERTIFICATE-----\n"


@pytest.fixture
def store() -> Store:
    return Store(clock=lambda: 1_700_000_000.0)


def test_without_an_api_server_every_namespace_publishes_an_empty_ca(store: Store) -> None:
    store.create(NS, {"metadata": {"name": "team"}}, None)
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease", "team"):
        published = store.get(CMS, ns, ROOT_CA_CONFIGMAP)
        assert published["data"] == {"ca.crt": ""}
        assert published["metadata"]["annotations"] == {"kubernetes.io/description": DESCRIPTION}
        assert [e["manager"] for e in published["metadata"]["managedFields"]] == ["kube-controller-manager"]


def test_publishing_a_ca_updates_the_maps_already_there_once(store: Store) -> None:
    before = store.get(CMS, "default", ROOT_CA_CONFIGMAP)
    store.publish_root_ca(CA)
    after = store.get(CMS, "default", ROOT_CA_CONFIGMAP)
    assert after["data"] == {"ca.crt": CA.decode()} and after["metadata"]["uid"] == before["metadata"]["uid"]
    version = store.resource_version
    store.publish_root_ca(CA)  # nothing to change: no write
    assert store.resource_version == version


def test_a_terminating_namespace_does_not_get_its_map_back(store: Store) -> None:
    store.create(NS, {"metadata": {"name": "going"}}, None)
    store.delete(NS, None, "going")
    with pytest.raises(NotFound):
        store.get(NS, None, "going")
    assert store.objects(CMS, "going") == []
