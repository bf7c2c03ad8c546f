"""Secret and ConfigMap data as the API server reads it: base64 as Go decodes it, keys, size, immutability.

The gateway's kernel records are Secrets: what a real server refuses in them must be refused here too,
with the same words, and what it stores (the canonical base64 of the bytes it read) stored the same.
"""

from __future__ import annotations

import base64

import pytest

from gateway.cluster.interface import BadRequest, Cluster, Invalid, PatchType

MIB = 1024 * 1024


def secret(name: str, **fields: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, **fields}


def config_map(name: str, **fields: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **fields}


@pytest.mark.parametrize(("value", "offset"), [
    ("not base64!", 3),  # a space
    ("abc", 0),  # a quantum cut short: StdEncoding wants its padding
    ("YWJjZA", 4),
    ("YQ==YWJj", 4),  # nothing may follow the padding
    ("YWJj\u00e9", 4),  # the offset counts the UTF-8 bytes of the JSON string
])
async def test_data_that_is_not_base64_is_refused_where_go_stops_reading(cluster: Cluster, ns: str, value: str,
                                                                         offset: int) -> None:
    with pytest.raises(BadRequest) as refused:
        await cluster.create("secrets", secret("s", data={"k": value}), namespace=ns)
    assert str(refused.value) == ('Secret in version "v1" cannot be handled as a Secret: '
                                  f"illegal base64 data at input byte {offset}")
    with pytest.raises(BadRequest, match=f"ConfigMap: illegal base64 data at input byte {offset}$"):
        await cluster.create("configmaps", config_map("c", binaryData={"k": value}), namespace=ns)


async def test_data_is_stored_as_the_bytes_it_encodes(cluster: Cluster, ns: str) -> None:
    created = await cluster.create("secrets", secret("s", data={"wrapped": "YW\nJj", "none": None}), namespace=ns)
    assert created["data"] == {"wrapped": "YWJj", "none": ""}
    replaced = await cluster.replace("secrets", "s", secret("s", data={"wrapped": "YWJ\r\nj"}), namespace=ns)
    assert replaced["data"] == {"wrapped": "YWJj"}


async def test_a_value_that_is_not_a_string_is_refused_as_the_typed_decoder_refuses_it(cluster: Cluster,
                                                                                       ns: str) -> None:
    with pytest.raises(BadRequest, match="json: cannot unmarshal number into Go struct field Secret.data of type "
                                         r"\[\]uint8$"):
        await cluster.create("secrets", secret("s", data={"k": 5}), namespace=ns)
    with pytest.raises(BadRequest, match="json: cannot unmarshal number into Go struct field ConfigMap.data of type "
                                         "string$"):
        await cluster.create("configmaps", config_map("c", data={"k": 5}), namespace=ns)


async def test_a_patch_leaving_data_that_is_not_base64_is_invalid(cluster: Cluster, ns: str) -> None:
    await cluster.create("secrets", secret("s", data={"k": "YWJj"}), namespace=ns)
    with pytest.raises(Invalid) as refused:
        await cluster.patch("secrets", "s", {"data": {"k": "Y!"}}, namespace=ns, patch_type=PatchType.MERGE)
    [cause] = refused.value.causes
    assert cause.field == "patch" and cause.message.endswith("illegal base64 data at input byte 1")
    assert (await cluster.get("secrets", "s", namespace=ns))["data"] == {"k": "YWJj"}


async def test_a_config_map_key_may_not_be_in_both_data_and_binary_data(cluster: Cluster, ns: str) -> None:
    with pytest.raises(Invalid) as refused:
        await cluster.create("configmaps", config_map("c", data={"k": "1"}, binaryData={"k": "YWJj"}), namespace=ns)
    assert [(c.field, c.message) for c in refused.value.causes] == [
        ("data[k]", 'Invalid value: "k": duplicate of key present in binaryData')]


async def test_data_may_hold_one_mebibyte_in_all(cluster: Cluster, ns: str) -> None:
    await cluster.create("secrets", secret("full", stringData={"k": "x" * MIB}), namespace=ns)
    with pytest.raises(Invalid) as refused:
        await cluster.create("secrets", secret("over", stringData={"k": "x" * MIB + "x"}), namespace=ns)
    assert [(c.field, c.reason, c.message) for c in refused.value.causes] == [
        ("data", "FieldValueTooLong", f"Too long: may not be more than {MIB} bytes")]
    half = base64.b64encode(b"y" * (MIB // 2)).decode()
    with pytest.raises(Invalid) as refused:  # a ConfigMap counts both maps, and names its root
        await cluster.create("configmaps", config_map("over", data={"a": "x" * (MIB // 2 + 1)},
                                                      binaryData={"b": half}), namespace=ns)
    assert [(c.field, c.reason) for c in refused.value.causes] == [("[]", "FieldValueTooLong")]


async def test_an_immutable_config_map_stays_immutable_and_unchanged(cluster: Cluster, ns: str) -> None:
    await cluster.create("configmaps", config_map("c", data={"k": "1"}, immutable=True), namespace=ns)
    with pytest.raises(Invalid) as refused:
        await cluster.replace("configmaps", "c", config_map("c", data={"k": "2"}), namespace=ns)
    assert sorted(c.field for c in refused.value.causes) == ["data", "immutable"]
    assert (await cluster.get("configmaps", "c", namespace=ns))["data"] == {"k": "1"}
