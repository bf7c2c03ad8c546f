"""The simulated API server's parts that need no server: request paths, Table cells, body decoding,
certificates and kubeconfig files."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import yaml

from fakes.apiserver import decoding, kubeconfig, paths, protobuf, tables, tls
from fakes.state.lifecycle import Preconditions
from gateway.cluster.interface import BadRequest, PatchType, Propagation, UnsupportedMediaType


@pytest.mark.parametrize(
    ("path", "resource", "namespace", "name", "subresource"),
    [
        ("/api/v1/pods", "pods", None, None, None),
        ("/api/v1/namespaces/ns1/pods", "pods", "ns1", None, None),
        ("/api/v1/namespaces/ns1/pods/p/log", "pods", "ns1", "p", "log"),
        ("/api/v1/namespaces", "namespaces", None, None, None),
        ("/api/v1/namespaces/ns1", "namespaces", None, "ns1", None),
        ("/api/v1/namespaces/ns1/status", "namespaces", None, "ns1", "status"),
        ("/api/v1/namespaces/ns1/serviceaccounts/sa/token", "serviceaccounts", "ns1", "sa", "token"),
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles/admin", "clusterroles", None, "admin", None),
        ("/apis/apps/v1/namespaces/x/deployments", "deployments", "x", None, None),
    ],
)
def test_resource_paths_name_what_the_real_server_resolves(path, resource, namespace, name, subresource):
    target = paths.parse(path)
    assert isinstance(target, paths.ResourcePath)
    assert (target.resource.plural, target.namespace, target.name, target.subresource) == (
        resource, namespace, name, subresource
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/widgets",  # unknown resource
        "/apis/apps/v1/pods",  # pods are not in apps/v1
        "/api/v1/pods/p",  # a namespaced object outside its namespace
        "/api/v1/namespaces/ns1/pods/p/exec",  # subresource we do not serve
        "/api/v1/namespaces/ns1/clusterroles",  # cluster-scoped resource in a namespace
        "/healthz",
    ],
)
def test_paths_we_do_not_serve_parse_to_none(path):
    assert paths.parse(path) is None


def test_discovery_paths():
    assert paths.parse("/api") == paths.DiscoveryPath(None, None, legacy=True)
    assert paths.parse("/apis/apps") == paths.DiscoveryPath("apps", None, legacy=False)
    assert paths.parse("/apis/apps/v1") == paths.DiscoveryPath("apps", "v1", legacy=False)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600 + 60, "3h1m"), (10 * 3600, "10h"),
     (3 * 86400 + 3600, "3d1h"), (30 * 86400, "30d"), (3 * 365 * 86400, "3y")],
)
def test_ages_print_as_kubectl_prints_them(seconds, shown):
    assert tables.human_duration(seconds) == shown


def test_pod_table_rows_show_readiness_status_and_restarts():
    pod = {
        "metadata": {"name": "p", "creationTimestamp": "2020-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": True, "restartCount": 1, "state": {"running": {}}},
            {"name": "b", "ready": False, "restartCount": 2, "state": {"waiting": {"reason": "ImagePullBackOff"}}},
        ]},
    }
    table = tables.to_table("pods", [pod])
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert table["rows"][0]["cells"][:4] == ["p", "1/2", "ImagePullBackOff", 3]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert tables.to_table("pods", [pod], include_object="Object")["rows"][0]["object"] == pod
    assert "object" not in tables.to_table("pods", [pod], include_object="None")["rows"][0]


def test_table_is_wanted_only_when_asked_first():
    assert tables.wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert not tables.wants_table("application/json")
    assert not tables.wants_table("application/json, application/json;as=Table;v=v1;g=meta.k8s.io")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "unexpected end of JSON input"),
        (b"{bad", "invalid character 'b' looking for beginning of object key string"),
        (b'{"a" 1}', "invalid character '1' after object key"),
        (b'{"a": 1 "b": 2}', "invalid character '\"' after object key:value pair"),
        (b"[1 2]", "invalid character '2' after array element"),
        (b"{} x", "invalid character 'x' after top-level value"),
    ],
)
def test_malformed_bodies_fail_with_the_go_decoder_wording(body, message):
    with pytest.raises(BadRequest) as err:
        decoding.decode_object(body)
    assert err.value.message == f"couldn't get version/kind; json parse error: {message}"


def test_patch_content_types():
    assert decoding.patch_type("application/merge-patch+json") is PatchType.MERGE
    assert decoding.patch_type("application/strategic-merge-patch+json; charset=utf-8") is PatchType.STRATEGIC
    assert decoding.patch_type(decoding.APPLY_PATCH) is PatchType.APPLY
    with pytest.raises(UnsupportedMediaType):
        decoding.patch_type("application/apply-patch+cbor")


def test_delete_options_from_query_and_body():
    assert decoding.delete_options({}, b"") == decoding.DeleteRequest(None, None, None)
    assert decoding.delete_options({"gracePeriodSeconds": "0", "propagationPolicy": "Foreground"}, b"") == \
        decoding.DeleteRequest(0, Propagation.FOREGROUND, None)
    body = b'{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":5,"orphanDependents":true,' \
        b'"preconditions":{"resourceVersion":"7"}}'
    assert decoding.delete_options({}, body) == decoding.DeleteRequest(5, Propagation.ORPHAN, Preconditions(None, "7"))
    with pytest.raises(BadRequest):
        decoding.delete_options({"propagationPolicy": "Sometimes"}, b"")
    with pytest.raises(BadRequest, match="Preconditions.preconditions.uid of type types.UID"):
        decoding.delete_options({}, b'{"preconditions":{"uid":5}}')


async def test_generated_certificate_is_trusted_through_its_ca_only(tmp_path):
    cert = tls.generate()
    server_ctx = cert.server_context()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        trusting = ssl.create_default_context(cadata=cert.ca_pem.decode())
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=trusting), 5)
        writer.close()
        other = ssl.create_default_context(cadata=tls.generate().ca_pem.decode())
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=other), 5)
    finally:
        server.close()
        await server.wait_closed()


def test_kubeconfig_has_admin_and_extra_user_contexts(tmp_path):
    path = kubeconfig.write(tmp_path / "kc", "https://127.0.0.1:1", b"CA", "admintoken", users={"alice": "t2"})
    assert path.stat().st_mode & 0o077 == 0
    doc = yaml.safe_load(path.read_text())
    assert doc["current-context"] == kubeconfig.context_for(kubeconfig.ADMIN_USER)
    tokens = {u["name"]: u["user"]["token"] for u in doc["users"]}
    assert tokens == {kubeconfig.ADMIN_USER: "admintoken", "alice": "t2"}
    contexts = {c["name"]: c["context"]["user"] for c in doc["contexts"]}
    assert contexts[kubeconfig.context_for("alice")] == "alice"
    assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:1"


def _field(number: int, value: bytes | int) -> bytes:
    """One protobuf field: a varint for ints, length-delimited for bytes."""
    def varint(n: int) -> bytes:
        out = b""
        while True:
            out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
            n >>= 7
            if not n:
                return out
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, api_version.encode()) + _field(2, kind.encode())
    return protobuf.MAGIC + _field(1, type_meta) + _field(2, raw)


def test_protobuf_bodies_decode_to_their_json_form():
    meta = _field(1, b"cm") + _field(3, b"") + _field(7, 0) + _field(8, b"")  # zero fields as gogo writes them
    raw = _field(1, meta) + _field(2, _field(1, b"k") + _field(2, b"v")) + _field(3, _field(1, b"b") + _field(2, b"\x00\x01"))
    obj = decoding.decode_body(_envelope("v1", "ConfigMap", raw), protobuf.MEDIA_TYPE)
    assert obj == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
                   "data": {"k": "v"}, "binaryData": {"b": "AAE="}}
    sa = decoding.decode_body(_envelope("v1", "ServiceAccount", _field(1, _field(1, b"sa")) + _field(4, 0)),
                              protobuf.MEDIA_TYPE)
    assert sa["automountServiceAccountToken"] is False  # a pointer field: false is a choice


def test_protobuf_bodies_outside_the_table_are_refused_not_dropped():
    with pytest.raises(UnsupportedMediaType, match="kind Deployment"):
        decoding.decode_body(_envelope("apps/v1", "Deployment", b""), protobuf.MEDIA_TYPE)
    with pytest.raises(UnsupportedMediaType, match="field 99 of ConfigMap"):
        decoding.decode_body(_envelope("v1", "ConfigMap", _field(99, b"x")), protobuf.MEDIA_TYPE)
    with pytest.raises(BadRequest):
        decoding.decode_body(b"not protobuf", protobuf.MEDIA_TYPE)
    with pytest.raises(UnsupportedMediaType):
        decoding.decode_body(b"a: b", "application/yaml")


def test_event_tables_put_the_object_first_and_the_name_last():
    event = {
        "metadata": {"name": "p.1", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{c}"},
        "reason": "Failed", "message": "Error: ImagePullBackOff", "type": "Warning", "count": 2,
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2020-01-01T00:00:00Z", "lastTimestamp": "2020-01-01T00:00:00Z",
    }
    table = tables.to_table("events", [event])
    columns = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
    assert [name for name, priority in columns if priority == 0] == ["Last Seen", "Type", "Reason", "Object", "Message"]
    assert columns[-1] == ("Name", 1)
    cells = dict(zip([name for name, _ in columns], table["rows"][0]["cells"], strict=True))
    assert cells["Object"] == "pod/p" and cells["Source"] == "kubelet, node-1" and cells["Name"] == "p.1"
