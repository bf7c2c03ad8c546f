"""The three patch formats, as ``kubectl patch`` / ``kubectl apply`` and the gateway send them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes.state.patching import apply_patch, json_patch, merge_patch, strategic_merge_patch
from gateway.cluster.interface import BadRequest, Invalid, PatchType, UnsupportedMediaType

SCALARS = st.one_of(st.integers(-5, 5), st.text(alphabet="ab", max_size=2), st.booleans())
DOCS = st.recursive(
    st.dictionaries(st.sampled_from("abcd"), SCALARS, max_size=3),
    lambda inner: st.dictionaries(st.sampled_from("abcd"), st.one_of(SCALARS, inner), max_size=3),
    max_leaves=8,
)


def diff(source: dict, target: dict) -> dict:
    """The merge patch turning ``source`` into ``target`` (RFC 7386 section 3, read backwards)."""
    patch: dict = {}
    for key in source:
        if key not in target:
            patch[key] = None
    for key, value in target.items():
        if isinstance(value, dict) and isinstance(source.get(key), dict):
            sub = diff(source[key], value)
            if sub:
                patch[key] = sub
        elif source.get(key, object()) != value or key not in source:
            patch[key] = value
    return patch


@settings(max_examples=100)
@given(DOCS, DOCS)
def test_merge_patch_of_a_diff_reaches_the_target(source: dict, target: dict) -> None:
    assert merge_patch(source, diff(source, target)) == target


@settings(max_examples=100)
@given(DOCS, DOCS)
def test_merge_patch_is_idempotent_and_leaves_its_input_alone(source: dict, patch: dict) -> None:
    before = json.dumps(source, sort_keys=True)
    once = merge_patch(source, patch)
    assert merge_patch(once, patch) == once
    assert json.dumps(source, sort_keys=True) == before


def test_json_patch_operations() -> None:
    doc = {"metadata": {"labels": {"a": "1"}, "finalizers": ["x", "y"]}, "data": {"k": "v"}}
    out = json_patch(doc, [
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
        {"op": "remove", "path": "/metadata/finalizers/0"},
        {"op": "add", "path": "/metadata/finalizers/-", "value": "z"},
        {"op": "replace", "path": "/data/k", "value": "w"},
        {"op": "copy", "from": "/data/k", "path": "/data/copy"},
        {"op": "move", "from": "/data/copy", "path": "/data/moved"},
        {"op": "test", "path": "/data/moved", "value": "w"},
        {"op": "add", "path": "/metadata/annotations", "value": {"a~b/c": "1"}},
        {"op": "remove", "path": "/metadata/annotations/a~0b~1c"},
    ])
    assert out == {"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["y", "z"], "annotations": {}},
                   "data": {"k": "w", "moved": "w"}}
    assert doc["metadata"]["finalizers"] == ["x", "y"]


def test_json_patch_errors() -> None:
    # The real server sends only its generic 422 text for both (handlers/patch.go).
    with pytest.raises(Invalid, match="^the server rejected our request due to an error in our request$"):
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    with pytest.raises(Invalid, match="^the server rejected our request due to an error in our request$"):
        json_patch({"a": 1}, [{"op": "remove", "path": "/b"}])
    with pytest.raises(Invalid):
        json_patch({"a": 1}, [{"op": "replace", "path": "/b", "value": 1}])
    with pytest.raises(BadRequest):
        json_patch({"a": 1}, [{"op": "jump", "path": "/a"}])
    with pytest.raises(BadRequest):
        json_patch({"a": 1}, {"op": "add"})


def test_patch_bodies_and_content_types() -> None:
    assert apply_patch({"a": 1}, b'{"b": 2}', PatchType.MERGE) == {"a": 1, "b": 2}
    assert apply_patch({"a": 1}, '{"a": null}', "application/merge-patch+json; charset=utf-8") == {}
    with pytest.raises(BadRequest):
        apply_patch({"a": 1}, b"{not json", PatchType.MERGE)
    with pytest.raises(BadRequest):
        apply_patch({"a": 1}, [1], PatchType.MERGE)
    with pytest.raises(UnsupportedMediaType):
        apply_patch({"a": 1}, {}, "application/apply-patch+yaml")


POD = {
    "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["f1"]},
    "spec": {
        "containers": [
            {"name": "main", "image": "i:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
             "ports": [{"containerPort": 80, "protocol": "TCP"}]},
            {"name": "side", "image": "s:1"},
        ],
        "volumes": [{"name": "v1", "emptyDir": {}}],
        "tolerations": [{"key": "k"}],
    },
}


def test_strategic_merge_merges_keyed_lists_and_replaces_others() -> None:
    out = strategic_merge_patch(POD, {"spec": {
        "containers": [{"name": "main", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                        "ports": [{"containerPort": 81}]}],
        "volumes": [{"name": "v2", "emptyDir": {}}],
        "tolerations": [{"key": "other"}],
    }})
    main, side = out["spec"]["containers"]
    assert (main["name"], side["name"]) == ("main", "side")
    assert main["image"] == "i:1"
    assert main["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}]
    assert [p["containerPort"] for p in main["ports"]] == [80, 81]
    assert [v["name"] for v in out["spec"]["volumes"]] == ["v1", "v2"]
    assert out["spec"]["tolerations"] == [{"key": "other"}]


def test_strategic_merge_directives() -> None:
    out = strategic_merge_patch(POD, {
        "metadata": {"labels": {"a": None, "b": "2"}, "finalizers": ["f2"]},
        "spec": {"containers": [{"name": "side", "$patch": "delete"}],
                 "$setElementOrder/containers": [{"name": "main"}]},
    })
    assert out["metadata"]["labels"] == {"b": "2"}
    assert out["metadata"]["finalizers"] == ["f1", "f2"]
    assert [c["name"] for c in out["spec"]["containers"]] == ["main"]
    replaced = strategic_merge_patch(POD, {"spec": {"$patch": "replace", "containers": [{"name": "x", "image": "y"}]}})
    assert replaced["spec"] == {"containers": [{"name": "x", "image": "y"}]}
    dropped = strategic_merge_patch(POD, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"]}})
    assert dropped["metadata"]["finalizers"] == []


def test_service_ports_merge_on_port() -> None:
    svc = {"spec": {"ports": [{"name": "http", "port": 80}, {"name": "zmq", "port": 5555}]}}
    out = strategic_merge_patch(svc, {"spec": {"ports": [{"name": "zmq2", "port": 5555}]}})
    assert out["spec"]["ports"] == [{"name": "http", "port": 80}, {"name": "zmq2", "port": 5555}]


def test_set_element_order_orders_the_merged_list_like_the_server() -> None:
    """``kubectl apply`` re-adding an env var sends the manifest's order; items only on the server keep their place."""
    live = {"env": [{"name": "A"}, {"name": "C"}, {"name": "X", "value": "server"}, {"name": "D"}]}
    patch = {"env": [{"name": "B", "value": "2"}], "$setElementOrder/env": [{"name": "A"}, {"name": "B"},
                                                                            {"name": "C"}, {"name": "D"}]}
    out = strategic_merge_patch(live, patch)
    assert [e["name"] for e in out["env"]] == ["A", "B", "C", "X", "D"]
    reordered = strategic_merge_patch(live, {"$setElementOrder/env": [{"name": "D"}, {"name": "C"}, {"name": "A"}]})
    assert [e["name"] for e in reordered["env"]] == ["X", "D", "C", "A"]  # X is before D on the server
    finalizers = strategic_merge_patch({"finalizers": ["a", "b"]}, {"$setElementOrder/finalizers": ["b", "a"]})
    assert finalizers["finalizers"] == ["b", "a"]
