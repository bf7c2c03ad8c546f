"""The kernel record: any record round-trips through its Secret, and a client's text stays inside ``data``."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fakes.memory import MemoryCluster
from fakes.state.store import Store
from gateway.cluster.informer import Informer
from gateway.kernels.records import RecordStore
from gateway.objects.endpoints import KernelEndpoints
from gateway.objects.record import (
    RECORD_SELECTOR,
    KernelRecord,
    NamespaceMode,
    Phase,
    RecordError,
    RecordPlacement,
    RecordPod,
    RecordSession,
    RestartKind,
    parse_record,
    record_name,
    record_secret,
)

NAMESPACE = "enterprise-gateway"

kernel_ids = st.uuids(version=4).map(str)
texts = st.text(st.characters(categories=["L", "M", "N", "P", "S", "Z", "C"]), max_size=40)
"""Any text a client may send, unpaired surrogates (JSON's ``\\ud800``) included: a session's path and name are a client's."""
dns_labels = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                       timezones=st.just(timezone.utc))
ports = st.integers(1, 65535)
placements = st.builds(RecordPlacement, namespace=dns_labels, mode=st.sampled_from(NamespaceMode),
                       service_account=dns_labels, pod_name=dns_labels, created_namespace=st.booleans(),
                       created_role_binding=st.sampled_from(["", "kernel-controller"]),
                       created_service_account=st.booleans())
connections = st.builds(KernelEndpoints, ip=texts, shell_port=ports, iopub_port=ports, stdin_port=ports,
                        control_port=ports, hb_port=ports, key=st.text(min_size=16, max_size=100),
                        signature_scheme=st.sampled_from(["hmac-sha256", "hmac-sha512"]),
                        comm_port=st.integers(0, 65535))
records = st.builds(
    KernelRecord, kernel_id=kernel_ids, kernelspec=texts, username=texts,
    env=st.dictionaries(texts, texts, max_size=5),
    launch_timeout=st.floats(min_value=0.001, max_value=1e6, allow_nan=False, allow_infinity=False),
    placement=placements, phase=st.sampled_from(Phase), actor=texts, launched_at=moments, launch_deadline=moments,
    last_activity=moments, restart_count=st.integers(0, 1000), restart_kind=st.none() | st.sampled_from(RestartKind),
    pod=st.none() | st.builds(RecordPod, name=dns_labels, uid=texts), connection=st.none() | connections,
    connected=st.dictionaries(texts, moments, max_size=3),
    sessions=st.dictionaries(texts, st.builds(RecordSession, path=texts, name=st.none() | texts, type=texts),
                             max_size=3),
    resource_version=st.sampled_from(["", "1", "12345"]),
)


@given(records)
def test_any_record_round_trips_through_its_secret(record: KernelRecord) -> None:
    assert parse_record(record_secret(record, NAMESPACE)) == record


@given(records)
def test_a_record_written_before_sessions_were_recorded_reads_with_none(record: KernelRecord) -> None:
    secret = record_secret(record, NAMESPACE)
    document = json.loads(base64.b64decode(secret["data"]["record"]))
    del document["sessions"]
    secret["data"]["record"] = base64.b64encode(json.dumps(document).encode()).decode()
    assert parse_record(secret).sessions == {}


@given(records)
def test_client_text_and_the_key_stay_inside_data(record: KernelRecord) -> None:
    secret = record_secret(record, NAMESPACE)
    assert set(secret) == {"apiVersion", "kind", "type", "metadata", "data"}
    assert secret["type"] == "Opaque" and list(secret["data"]) == ["record"]
    meta = secret["metadata"]
    assert set(meta) <= {"name", "namespace", "labels", "resourceVersion"}
    assert meta["name"] == f"kernel-{record.kernel_id}" and meta["namespace"] == NAMESPACE
    assert meta["labels"] == {"app": "enterprise-gateway", "component": "kernel-record", "kernel_id": record.kernel_id}
    if record.connection is not None:
        # The key may also occur by chance in other generated text: it must occur no more often than
        # with another key in its place.
        key = record.connection.key
        keyless = replace(record, connection=replace(record.connection, key="\x00" * 16))
        assert repr(record).count(key) == repr(keyless).count(key)
        assert json.dumps(meta).count(key) == json.dumps(record_secret(keyless, NAMESPACE)["metadata"]).count(key)


def test_the_record_is_base64_of_json_that_names_every_field() -> None:
    record = KernelRecord(
        kernel_id=str(uuid.uuid4()), kernelspec="python_kubernetes", username="alice\n$(id)",
        env={"KERNEL_USERNAME": "alice\n$(id)"}, launch_timeout=30.0,
        placement=RecordPlacement("alice-ns", NamespaceMode.OWN, "default", "alice-ns", created_namespace=True,
                                  created_role_binding="kernel-controller"),
        phase=Phase.RUNNING, actor="gateway-0", launched_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        launch_deadline=datetime(2026, 1, 1, tzinfo=timezone.utc),
        last_activity=datetime(2026, 1, 1, 0, 0, 1, 500, tzinfo=timezone.utc),
        pod=RecordPod("alice-ns", "uid-1"),
        connection=KernelEndpoints("10.0.0.7", 1, 2, 3, 4, 5, key="s3cret-key-s3cret"),
    )
    document = json.loads(base64.b64decode(record_secret(record, NAMESPACE)["data"]["record"]))
    assert {"kernel_id", "kernelspec", "username", "env", "placement", "pod", "connection", "phase", "launched_at",
            "restart_count", "launch_deadline", "last_activity"} <= set(document)
    assert document["placement"] == {"namespace": "alice-ns", "mode": "own", "service_account": "default",
                                     "pod_name": "alice-ns", "created": {"namespace": True,
                                                                         "role_binding": "kernel-controller",
                                                                         "service_account": False}}
    assert document["connection"]["key"] == "s3cret-key-s3cret"
    assert document["last_activity"] == "2026-01-01T00:00:01.000500Z"
    assert RECORD_SELECTOR == "app=enterprise-gateway,component=kernel-record"


def _mutations(document: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
                               lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                               max_leaves=5)
    paths = [(key,) for key in document] + [("placement", key) for key in document["placement"]] + \
        [("connection", key) for key in document["connection"]]

    def mutate(path: tuple[str, ...], value: Any, drop: bool) -> dict[str, Any]:
        changed = json.loads(json.dumps(document))
        holder = changed
        for part in path[:-1]:
            holder = holder[part]
        if drop:
            holder.pop(path[-1], None)
        else:
            holder[path[-1]] = value
        return changed

    return st.builds(mutate, st.sampled_from(paths), json_values, st.booleans())


VALID = KernelRecord(
    kernel_id="0b7ad5a6-3b0e-4a43-9a2e-6b3f2f0e4c11", kernelspec="python_kubernetes", username="alice", env={},
    launch_timeout=30.0, placement=RecordPlacement("ns", NamespaceMode.SHARED, "default", "pod"),
    phase=Phase.RUNNING, actor="gateway-0", launched_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
    launch_deadline=datetime(2026, 1, 1, tzinfo=timezone.utc), last_activity=datetime(2026, 1, 1, tzinfo=timezone.utc),
    pod=RecordPod("pod", "uid"), connection=KernelEndpoints("10.0.0.1", 1, 2, 3, 4, 5, key="k" * 32),
)
VALID_DOCUMENT = json.loads(base64.b64decode(record_secret(VALID, NAMESPACE)["data"]["record"]))


@given(_mutations(VALID_DOCUMENT))
def test_a_damaged_record_is_refused_with_a_record_error_or_read_whole(document: dict[str, Any]) -> None:
    secret = record_secret(VALID, NAMESPACE)
    secret["data"]["record"] = base64.b64encode(json.dumps(document).encode()).decode()
    try:
        parsed = parse_record(secret)
    except RecordError as error:
        assert "k" * 32 not in str(error)
        return
    assert isinstance(parsed, KernelRecord)


@pytest.mark.parametrize("damage", [
    lambda s: s.pop("data"),
    lambda s: s["data"].update(record="not base64!"),
    lambda s: s["data"].update(record=base64.b64encode(b"[1, 2]").decode()),
    lambda s: s["metadata"].update(name="kernel-someone-else"),
    lambda s: s["metadata"]["labels"].update(kernel_id="another"),
])
def test_a_secret_that_is_not_this_kernels_record_is_refused(damage: Any) -> None:
    secret = record_secret(VALID, NAMESPACE)
    damage(secret)
    with pytest.raises(RecordError):
        parse_record(secret)


@pytest.mark.parametrize("kernel_id", ["", "Not A Uuid!", "x" * 300, "a/b"])
def test_a_kernel_id_that_cannot_name_a_record_is_refused(kernel_id: str) -> None:
    with pytest.raises(ValueError):
        record_name(kernel_id)


# ---------------------------------------------------------------------- the store over a lagging cache


async def test_the_store_reads_its_own_writes_while_its_cache_lags_behind_them() -> None:
    """A real API server's watch may lag a create and the replaces right after it: the replica's
    own writes must still be what it reads, and build on each other."""
    admin = MemoryCluster(Store())
    await admin.create("namespaces", {"metadata": {"name": NAMESPACE}})
    never_synced = Informer(admin, "secrets", namespace=NAMESPACE, label_selector=RECORD_SELECTOR)
    store = RecordStore(admin, never_synced, NAMESPACE)
    try:
        created = await store.create(replace(VALID, resource_version=""))
        first = await store.modify(VALID.kernel_id, lambda r: replace(r, restart_count=1))
        second = await store.modify(VALID.kernel_id, lambda r: replace(r, restart_count=r.restart_count + 1))

        assert first is not None and second is not None, "the store lost its own write"
        assert second.restart_count == 2 and store.get(VALID.kernel_id) == second
        assert len({created.resource_version, first.resource_version, second.resource_version}) == 3
        await store.delete(VALID.kernel_id)
        assert store.get(VALID.kernel_id) is None
    finally:
        await admin.close()


async def test_a_write_the_server_stored_otherwise_reads_as_the_server_stored_it() -> None:
    """What something between (a mutating admission webhook) changed in a written record is what the store then
    reads: its own write's answer is believed over what it sent."""
    admin = MemoryCluster(Store())
    await admin.create("namespaces", {"metadata": {"name": NAMESPACE}})
    stored_otherwise = replace(VALID, resource_version="", actor="webhook")

    class Rewriting(MemoryCluster):
        async def create(self, resource: str, body: Any, *, namespace: str | None = None) -> dict[str, Any]:
            if resource == "secrets":
                body = {**body, "data": record_secret(stored_otherwise, NAMESPACE)["data"]}
            return await super().create(resource, body, namespace=namespace)

    cluster = Rewriting(admin.store)
    store = RecordStore(cluster, Informer(cluster, "secrets", namespace=NAMESPACE, label_selector=RECORD_SELECTOR),
                        NAMESPACE)
    try:
        created = await store.create(replace(VALID, resource_version=""))
        assert created.actor == "webhook"
        assert store.get(VALID.kernel_id) == created
    finally:
        await admin.close()
