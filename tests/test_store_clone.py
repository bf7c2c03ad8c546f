"""The store's copies of wire objects: equal to what was stored, sharing nothing a reader could change.

Every object goes into and out of the simulated store as a copy (``fakes.state.objects.clone``),
and every watch event carries one: a watcher that edits what it received must not change what
the store or another watcher holds.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fakes.state.objects import clone

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_data = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                         max_leaves=30)


def containers(value: Any) -> list[Any]:
    """Every dict and list inside ``value``, ``value`` included."""
    found = []
    if isinstance(value, dict):
        found.append(value)
        for item in value.values():
            found += containers(item)
    elif isinstance(value, list):
        found.append(value)
        for item in value:
            found += containers(item)
    return found


@given(json_data)
def test_a_copy_is_equal_and_shares_no_dict_or_list(value: Any) -> None:
    copied = clone(value)
    assert copied == value
    assert repr(copied) == repr(value)  # the same types too: 1 stays 1, 1.0 stays 1.0, -0.0 stays -0.0
    originals = {id(c) for c in containers(value)}
    assert not originals & {id(c) for c in containers(copied)}


def test_integers_past_64_bits_and_keys_that_are_not_strings_are_copied_as_they_are() -> None:
    value = {"big": [2**70, -(2**65)], "keys": {1: "one"}}
    copied = clone(value)
    assert copied == value and copied["big"] is not value["big"] and copied["keys"] is not value["keys"]


def test_editing_a_copy_leaves_the_original() -> None:
    pod = {"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"containers": [{"name": "c", "env": []}]}}
    copied = clone(pod)
    copied["metadata"]["labels"]["a"] = "2"
    copied["spec"]["containers"][0]["env"].append({"name": "X"})
    assert pod == {"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"containers": [{"name": "c", "env": []}]}}
