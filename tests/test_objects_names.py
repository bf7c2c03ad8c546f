"""Names and label values made from client text: always accepted by Kubernetes, never shared by two kernels."""

from __future__ import annotations

import re
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.objects.labels import (
    is_label_key,
    is_label_value,
    kernel_labels,
    kernel_selector,
    safe_label_value,
)
from gateway.objects.names import is_dns1123_label, is_dns1123_subdomain, kernel_resource_name, safe_label

SEED_KERNEL_ID = "5e755458-a114-4215-96b7-bcb016fc7b62"

uuid4s = st.uuids(version=4).map(str)
# Usernames from a small alphabet collide after sanitising ("A.b", "a-b", "a_B") far more often than free text.
colliding_usernames = st.text(alphabet="aAbB.-_ 1", max_size=8)
usernames = st.one_of(st.text(max_size=250), colliding_usernames, st.sampled_from(["", "-", "K", "\u212a", "İ"]))
simple_usernames = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,24}[a-z0-9])?", fullmatch=True).filter(lambda u: "--" not in u)


@pytest.mark.parametrize(
    "value, label, subdomain",
    [
        ("a", True, True),
        ("1a", True, True),
        ("alice-" + SEED_KERNEL_ID, True, True),
        ("a" * 63, True, True),
        ("a" * 64, False, True),
        ("a.b", False, True),
        ("", False, False),
        ("A", False, False),
        ("-a", False, False),
        ("a-", False, False),
        ("a\n", False, False),
        ("ä", False, False),
        ("a..b", False, False),
        ("a.", False, False),
        (".".join(["a" * 63] * 3 + ["a" * 61]), False, True),
        (".".join(["a" * 63] * 3 + ["a" * 62]), False, False),  # 254 characters
    ],
)
def test_dns1123_checks_follow_the_api_server(value, label, subdomain):
    assert is_dns1123_label(value) is label
    assert is_dns1123_subdomain(value) is subdomain


def test_the_seed_pod_name_is_kept_for_existing_tooling():
    assert kernel_resource_name("alice", SEED_KERNEL_ID) == "alice-" + SEED_KERNEL_ID


@pytest.mark.parametrize("first, second", [("Alice", "alice"), ("a.b", "a-b"), ("a_b", "a-b"), ("", "-"), ("a-", "a")])
def test_usernames_that_sanitise_alike_get_different_names(first, second):
    assert kernel_resource_name(first, SEED_KERNEL_ID) != kernel_resource_name(second, SEED_KERNEL_ID)


def test_a_long_username_is_shortened_and_keeps_the_kernel_id():
    name = kernel_resource_name("x" * 200, SEED_KERNEL_ID)
    assert len(name) == 63 and is_dns1123_label(name)
    assert name.startswith("x" * 17 + "-" + SEED_KERNEL_ID + "-")


@settings(max_examples=100)
@given(usernames, st.one_of(uuid4s, st.text(max_size=80)))
def test_kernel_names_are_dns1123_labels_for_any_input(username, kernel_id):
    assert is_dns1123_label(kernel_resource_name(username, kernel_id))


@settings(max_examples=100)
@given(usernames, uuid4s)
def test_kernel_names_always_show_the_kernel_id(username, kernel_id):
    assert kernel_id in kernel_resource_name(username, kernel_id)


@settings(max_examples=100)
@given(simple_usernames, uuid4s)
def test_simple_usernames_keep_the_enterprise_gateway_name(username, kernel_id):
    assert kernel_resource_name(username, kernel_id) == f"{username}-{kernel_id}"


@settings(max_examples=100)
@given(
    st.tuples(usernames, st.sampled_from([SEED_KERNEL_ID, "a-b", "b"])),
    st.tuples(usernames, st.sampled_from([SEED_KERNEL_ID, "a-b", "b"])),
)
def test_distinct_kernels_get_distinct_names(first, second):
    if first != second:
        assert kernel_resource_name(*first) != kernel_resource_name(*second)


@settings(max_examples=100)
@given(usernames, uuid4s)
def test_hashed_kernel_names_cannot_be_taken_by_a_readable_one(username, kernel_id):
    # A readable name ends with the kernel's uuid; a hashed one must not, or a
    # crafted username could claim another kernel's hashed name.
    name = kernel_resource_name(username, kernel_id)
    if name != f"{username}-{kernel_id}":
        assert not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", name[-36:])


parts_tuples = st.lists(st.one_of(st.text(max_size=40), colliding_usernames), min_size=2, max_size=2).map(tuple)


@settings(max_examples=100)
@given(parts_tuples, st.integers(min_value=8, max_value=63))
def test_safe_labels_are_valid_and_fit(parts, max_length):
    label = safe_label(*parts, max_length=max_length)
    assert is_dns1123_label(label) and len(label) <= max_length


@settings(max_examples=100)
@given(parts_tuples, parts_tuples)
def test_safe_labels_are_distinct_for_distinct_parts(first, second):
    if first != second:
        assert safe_label(*first) != safe_label(*second)


@pytest.mark.parametrize(
    "parts, expected",
    [(("svc", "alice"), "svc-alice"), (("config", "jean-luc"), "config-jean-luc"), (("x",), "x")],
)
def test_safe_label_keeps_simple_parts(parts, expected):
    assert safe_label(*parts) == expected


@pytest.mark.parametrize("parts", [("a-b", "c"), ("a", "B"), ("a", ""), ("a", "deadbeef"), ("deadbeef",)])
def test_safe_label_hashes_what_could_be_read_two_ways(parts):
    label = safe_label(*parts)
    assert label != "-".join(parts) and is_dns1123_label(label)


def test_safe_label_rejects_a_length_too_small_for_the_hash():
    with pytest.raises(ValueError):
        safe_label("a", max_length=7)


label_texts = st.one_of(st.text(max_size=100), st.text(alphabet="aA.-_ ", max_size=8))


@settings(max_examples=100)
@given(label_texts)
def test_safe_label_values_are_valid(text):
    assert is_label_value(safe_label_value(text))


@settings(max_examples=100)
@given(label_texts, label_texts)
def test_safe_label_values_are_distinct(first, second):
    if first != second:
        assert safe_label_value(first) != safe_label_value(second)


@pytest.mark.parametrize("text", ["alice", "Alice.Smith", "a_b-c", ""])
def test_valid_label_values_are_kept(text):
    assert safe_label_value(text) == text


@settings(max_examples=50)
@given(uuid4s)
def test_kernel_labels_are_valid_and_selectable(kernel_id):
    labels = kernel_labels(kernel_id)
    assert labels == {"app": "enterprise-gateway", "component": "kernel", "kernel_id": kernel_id}
    assert all(is_label_key(k) and is_label_value(v) for k, v in labels.items())
    assert kernel_selector(kernel_id) == f"app=enterprise-gateway,component=kernel,kernel_id={kernel_id}"
    assert kernel_labels(kernel_id) is not kernel_labels(kernel_id)


@pytest.mark.parametrize("kernel_id", ["", "a b", "x" * 64, "-a"])
def test_kernel_labels_refuse_ids_that_cannot_be_label_values(kernel_id):
    with pytest.raises(ValueError):
        kernel_labels(kernel_id)


@pytest.mark.parametrize(
    "key, valid",
    [
        ("app", True),
        ("kernel_id", True),
        ("cluster-autoscaler.kubernetes.io/safe-to-evict", True),
        ("example.com/a.b_c", True),
        ("", False),
        ("a/", False),
        ("/a", False),
        ("Example.com/a", False),
        ("a/b/c", False),
        ("x" * 64, False),
    ],
)
def test_label_keys(key, valid):
    assert is_label_key(key) is valid


def test_uuid4_ids_are_canonical_for_names():
    kernel_id = str(uuid.uuid4())
    assert kernel_resource_name("bob", kernel_id) == f"bob-{kernel_id}"
    assert kernel_resource_name("bob", kernel_id.upper()) != f"bob-{kernel_id}"
