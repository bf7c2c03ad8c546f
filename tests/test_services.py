"""Services on the simulated cluster get node ports as on a real API server.

A NodePort or LoadBalancer service gets a node port from 30000-32767 for each
port that names none, unique across the cluster; a requested one is kept when
free, else the request is a 422 with the server's words; deleting the service
(or making it a ClusterIP service) frees its ports for others.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes.memory import MemoryCluster
from fakes.state.nodeports import NODE_PORT_RANGE
from fakes.state.store import Store
from gateway.cluster.interface import Invalid
from gateway.cluster.resources import RESOURCES

SERVICES = RESOURCES["services"]
NS = "default"


def service(name: str, stype: str = "NodePort", *ports: dict[str, Any], **spec: Any) -> dict[str, Any]:
    ports = ports or ({"port": 80},)
    return {"metadata": {"name": name}, "spec": {"type": stype, "ports": [dict(p) for p in ports], **spec}}


def node_ports(obj: dict[str, Any]) -> list[Any]:
    return [p.get("nodePort") for p in obj["spec"]["ports"]]


def held(store: Store) -> set[int]:
    """The node ports the stored services hold."""
    return {p["nodePort"] for s in store.objects(SERVICES) for p in s["spec"].get("ports") or [] if p.get("nodePort")}


@pytest.fixture
def store() -> Store:
    return Store()


def test_a_node_port_service_gets_distinct_ports_from_the_range(store: Store) -> None:
    web = store.create(SERVICES, service("web", "NodePort", {"name": "http", "port": 80},
                                         {"name": "https", "port": 443}), NS)
    api = store.create(SERVICES, service("api", "LoadBalancer"), NS)

    ports = node_ports(web) + node_ports(api)
    assert all(p in NODE_PORT_RANGE for p in ports) and len(set(ports)) == 3
    assert node_ports(store.get(SERVICES, NS, "web")) == node_ports(web)  # stored as answered


def test_ports_sharing_a_number_share_one_node_port(store: Store) -> None:
    dns = store.create(SERVICES, service("dns", "NodePort", {"name": "udp", "port": 53, "protocol": "UDP"},
                                         {"name": "tcp", "port": 53, "protocol": "TCP"}), NS)
    [udp, tcp] = node_ports(dns)
    assert udp == tcp and udp in NODE_PORT_RANGE


def test_services_without_node_ports_get_none(store: Store) -> None:
    internal = store.create(SERVICES, service("internal", "ClusterIP"), NS)
    balanced = store.create(SERVICES, service("lb", "LoadBalancer", allocateLoadBalancerNodePorts=False), NS)
    assert node_ports(internal) == node_ports(balanced) == [None]
    assert held(store) == set()


def test_a_requested_node_port_is_kept_and_then_taken(store: Store) -> None:
    first = store.create(SERVICES, service("first", "NodePort", {"port": 80, "nodePort": 30080}), NS)
    assert node_ports(first) == [30080]

    with pytest.raises(Invalid) as taken:
        store.create(SERVICES, service("second", "NodePort", {"port": 80, "nodePort": 30080}), NS)
    assert str(taken.value) == ('Service "second" is invalid: spec.ports[0].nodePort: Invalid value: 30080: '
                                "provided port is already allocated")
    assert taken.value.status == 422
    assert [s["metadata"]["name"] for s in store.objects(SERVICES, NS) if s["metadata"]["name"] != "kubernetes"] \
        == ["first"]


@pytest.mark.parametrize("port", [80, 29999, 32768])
def test_a_node_port_out_of_range_is_refused(store: Store, port: int) -> None:
    with pytest.raises(Invalid) as refused:
        store.create(SERVICES, service("web", "NodePort", {"port": 80, "nodePort": port}), NS)
    assert str(refused.value) == (f'Service "web" is invalid: spec.ports[0].nodePort: Invalid value: {port}: '
                                  "provided port is not in the valid range. The range of valid ports is 30000-32767")


def test_a_refused_service_reserves_nothing(store: Store) -> None:
    store.create(SERVICES, service("taken", "NodePort", {"port": 80, "nodePort": 30002}), NS)
    with pytest.raises(Invalid):
        store.create(SERVICES, service("both", "NodePort", {"name": "a", "port": 80, "nodePort": 30001},
                                       {"name": "b", "port": 81, "nodePort": 30002}), NS)
    again = store.create(SERVICES, service("again", "NodePort", {"port": 80, "nodePort": 30001}), NS)
    assert node_ports(again) == [30001]
    assert store.node_ports.allocated() == held(store) == {30001, 30002}


def test_a_node_port_on_a_cluster_ip_service_is_forbidden(store: Store) -> None:
    with pytest.raises(Invalid) as refused:
        store.create(SERVICES, service("web", "ClusterIP", {"port": 80, "nodePort": 30080}), NS)
    assert "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'" in str(refused.value)


async def test_deleting_a_service_frees_its_node_port() -> None:
    store = Store()
    admin = MemoryCluster(store)
    await admin.create("services", service("web", "NodePort", {"port": 80, "nodePort": 31000}), namespace=NS)
    await admin.delete("services", "web", namespace=NS)

    again = await admin.create("services", service("other", "NodePort", {"port": 80, "nodePort": 31000}),
                               namespace=NS)
    assert node_ports(again) == [31000]
    await admin.close()


def test_deleting_the_namespace_frees_its_services_node_ports(store: Store) -> None:
    store.create(RESOURCES["namespaces"], {"metadata": {"name": "team"}}, None)
    store.create(SERVICES, service("web", "NodePort", {"port": 80, "nodePort": 31001}), "team")
    store.delete(RESOURCES["namespaces"], None, "team")
    assert store.node_ports.allocated() == held(store) == set()


def test_an_update_leaving_node_ports_out_keeps_them(store: Store) -> None:
    created = store.create(SERVICES, service("web", "NodePort", {"name": "http", "port": 80}), NS)
    body = service("web", "NodePort", {"name": "http", "port": 8080})  # resubmitted without nodePort
    replaced = store.replace(SERVICES, NS, "web", body)
    assert node_ports(replaced) == node_ports(created)
    assert store.node_ports.allocated() == set(node_ports(created))


def test_changing_the_type_allocates_or_frees_node_ports(store: Store) -> None:
    created = store.create(SERVICES, service("web", "ClusterIP", {"name": "http", "port": 80}), NS)
    cluster_ip = created["spec"]["clusterIP"]
    exposed = store.replace(SERVICES, NS, "web", service("web", "NodePort", {"name": "http", "port": 80},
                                                         clusterIP=cluster_ip))
    [port] = node_ports(exposed)
    assert port in NODE_PORT_RANGE and store.node_ports.allocated() == {port}

    internal = store.replace(SERVICES, NS, "web", service("web", "ClusterIP", {"name": "http", "port": 80},
                                                          clusterIP=cluster_ip))
    assert node_ports(internal) == [None] and store.node_ports.allocated() == set()
    reused = store.create(SERVICES, service("other", "NodePort", {"port": 80, "nodePort": port}), NS)
    assert node_ports(reused) == [port]


def test_moving_to_a_taken_node_port_is_refused_and_keeps_the_old_one(store: Store) -> None:
    store.create(SERVICES, service("a", "NodePort", {"name": "http", "port": 80, "nodePort": 30100}), NS)
    store.create(SERVICES, service("b", "NodePort", {"name": "http", "port": 80, "nodePort": 30200}), NS)
    with pytest.raises(Invalid, match="provided port is already allocated"):
        store.replace(SERVICES, NS, "b", service("b", "NodePort", {"name": "http", "port": 80, "nodePort": 30100}))
    assert node_ports(store.get(SERVICES, NS, "b")) == [30200]
    moved = store.replace(SERVICES, NS, "b", service("b", "NodePort", {"name": "http", "port": 80, "nodePort": 30300}))
    assert node_ports(moved) == [30300] and store.node_ports.allocated() == {30100, 30300}


OPERATIONS = st.lists(st.tuples(st.sampled_from(["create", "delete"]), st.sampled_from("abcdef"),
                                st.sampled_from([None, 30000, 30001, 30002])), max_size=25)


@settings(max_examples=60, deadline=None)
@given(OPERATIONS)
def test_allocations_always_equal_the_ports_stored_services_hold(operations: list[tuple[str, str, Any]]) -> None:
    store = Store()
    for op, name, requested in operations:
        try:
            if op == "create":
                port: dict[str, Any] = {"port": 80} if requested is None else {"port": 80, "nodePort": requested}
                store.create(SERVICES, service(name, "NodePort", port), NS)
            else:
                store.delete(SERVICES, NS, name)
        except Exception as exc:  # AlreadyExists, NotFound, a taken port
            assert getattr(exc, "status", None) in (404, 409, 422), exc
        ports = [p["nodePort"] for s in store.objects(SERVICES) for p in s["spec"].get("ports") or []
                 if p.get("nodePort")]
        assert len(ports) == len(set(ports))
        assert store.node_ports.allocated() == set(ports)
