"""The official ``kubernetes`` Python client against the simulated API server.

The client blocks, so the cluster runs on its own thread and loop
(``SimulatedClusterThread``) and these tests are synchronous.
"""

from __future__ import annotations

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from fakes.serve import SimulatedClusterThread
from fakes.state.store import Store


@pytest.fixture(scope="module")
def cluster():
    with SimulatedClusterThread(node_agent=False, store_factory=lambda: Store(watch_window=5)) as c:
        yield c


def api_client(cluster, token: str) -> client.ApiClient:
    config = client.Configuration()
    config.host = cluster.url
    config.ssl_ca_cert = str(cluster.ca_path)
    config.api_key = {"authorization": token}
    config.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(config)


@pytest.fixture(scope="module")
def admin(cluster):
    with api_client(cluster, cluster.admin_token) as api:
        yield api


@pytest.fixture
def core(admin):
    return client.CoreV1Api(admin)


def make_namespace(core: client.CoreV1Api, name: str) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))


def test_call_api_reads_the_version_and_discovery(admin):
    request = admin.param_serialize("GET", "/version", auth_settings=["BearerToken"])
    response = admin.call_api(*request)
    response.read()
    version = admin.response_deserialize(response, {"200": "object"}).data
    assert response.status == 200 and version["gitVersion"].startswith("v1.")
    groups = client.ApisApi(admin).get_api_versions()
    assert "rbac.authorization.k8s.io" in [g.name for g in groups.groups]
    resources = client.CoreV1Api(admin).get_api_resources()
    assert "pods" in [r.name for r in resources.resources]


def test_crud_with_typed_models(core):
    make_namespace(core, "crud")
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="one", labels={"app": "x"}), data={"k": "1"})
    created = core.create_namespaced_config_map("crud", cm)
    assert created.metadata.uid and created.metadata.resource_version
    core.create_namespaced_config_map("crud", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="two")))
    listed = core.list_namespaced_config_map("crud", label_selector="app=x")
    assert [i.metadata.name for i in listed.items] == ["one"]
    patched = core.patch_namespaced_config_map("one", "crud", {"data": {"k": "2"}})
    assert patched.data == {"k": "2"}
    core.delete_namespaced_config_map("one", "crud", body=client.V1DeleteOptions(propagation_policy="Foreground"))
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("one", "crud")
    assert err.value.status == 404
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("crud", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="two")))
    assert err.value.status == 409 and '"reason":"AlreadyExists"' in err.value.body


def test_watch_stream_replays_changes_and_ends_at_its_timeout(core):
    make_namespace(core, "watched")
    rv = core.list_namespaced_config_map("watched").metadata.resource_version
    core.create_namespaced_config_map("watched", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w")))
    core.delete_namespaced_config_map("w", "watched")
    events = list(watch.Watch().stream(
        core.list_namespaced_config_map, "watched", resource_version=rv, timeout_seconds=1
    ))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "w"), ("DELETED", "w")]


def test_watch_from_an_expired_version_raises_410(core):
    make_namespace(core, "expired")
    rv = core.list_namespaced_config_map("expired").metadata.resource_version
    for i in range(8):  # past the store's watch window of 5
        core.create_namespaced_config_map("expired", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"c{i}")))
    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, "expired", resource_version=rv,
                                      timeout_seconds=5):
            pass
    assert err.value.status == 410


def test_token_request_gives_a_token_subject_to_rbac(cluster, core):
    make_namespace(core, "tokens")
    core.create_namespaced_service_account("tokens", client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="sa")))
    request = core.create_namespaced_service_account_token(
        "sa", "tokens", client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    )
    assert request.status.token and request.status.expiration_timestamp
    with api_client(cluster, request.status.token) as as_sa:
        sa_core = client.CoreV1Api(as_sa)
        with pytest.raises(ApiException) as err:
            sa_core.list_namespaced_pod("tokens")
        assert err.value.status == 403
        review = client.AuthorizationV1Api(as_sa).create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(namespace="tokens", verb="list", resource="pods")
            ))
        )
        assert review.status.allowed is False
        client.RbacAuthorizationV1Api(client.ApiClient(core.api_client.configuration)).create_namespaced_role_binding(
            "tokens", client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="sa-view"),
                role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name="sa", namespace="tokens")],
            )
        )
        assert sa_core.list_namespaced_pod("tokens").items == []


def test_pod_binding_status_and_log(core):
    make_namespace(core, "pods")
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="p"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
    )
    core.create_namespaced_pod("pods", pod)
    core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name="n1")))
    # The server answers a binding with a Status, which the client cannot read as a V1Binding.
    response = core.create_namespaced_pod_binding("p", "pods", client.V1Binding(
        metadata=client.V1ObjectMeta(name="p"), target=client.V1ObjectReference(kind="Node", name="n1")
    ), _preload_content=False)
    assert response.status == 201
    assert core.read_namespaced_pod("p", "pods").spec.node_name == "n1"
    status = core.patch_namespaced_pod_status("p", "pods", {"status": {"phase": "Running"}})
    assert status.status.phase == "Running"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("p", "pods")
    assert err.value.status == 400 and "waiting to start" in err.value.body
