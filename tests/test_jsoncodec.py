"""The gateway's JSON (the cluster adapter's bodies, kernel records) reads and writes what the standard library's
codec would, on every input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.jsoncodec import decode, encode

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_round_trip_agrees_with_the_standard_codec(value: object) -> None:
    assert json.loads(encode(value)) == value
    assert decode(json.dumps(value)) == json.loads(json.dumps(value))


@given(st.dictionaries(st.text(st.characters(categories=["L", "N", "P", "C"])), json_values, max_size=6))
def test_sorted_keys_read_back_as_the_same_document_in_key_order(document: dict[str, object]) -> None:
    """A kernel record: what is written reads back unchanged, its keys in order, unpaired surrogates included."""
    assert json.loads(encode(document, sort_keys=True)) == document
    assert list(json.loads(encode(document, sort_keys=True))) == sorted(document)


def test_every_64_bit_integer_is_exact_and_wider_ones_are_still_sent() -> None:
    edges = {"max": 2**63 - 1, "min": -(2**63), "umax": 2**64 - 1}
    assert decode(encode(edges)) == edges
    assert all(type(v) is int for v in decode(encode(edges)).values())
    assert json.loads(encode({"n": 123456789012345678901234567890})) == {"n": 123456789012345678901234567890}


def test_keys_that_are_not_strings_are_written_as_json_writes_them() -> None:
    assert json.loads(encode({1: "a", "b": {2: 3}})) == json.loads(json.dumps({1: "a", "b": {2: 3}}))


def test_what_is_not_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        decode(b"<html>proxy error</html>")
    with pytest.raises(ValueError):
        decode(b"")
