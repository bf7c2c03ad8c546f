"""Validation: names and fields are refused exactly where a real API server refuses them."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes.state import validation
from gateway.cluster.interface import Invalid
from gateway.cluster.resources import RESOURCES

NAME_CHARS = st.text(alphabet="abcz09-._AZ_:/", max_size=70)


def reference_label(name: str) -> bool:
    """RFC 1123 label, read from the RFC rather than from the store's regex."""
    if not 1 <= len(name) <= 63:
        return False
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-")
    return set(name) <= allowed and name[0] != "-" and name[-1] != "-"


def reference_subdomain(name: str) -> bool:
    return 1 <= len(name) <= 253 and all(reference_label(part) for part in name.split("."))


@settings(max_examples=100)
@given(NAME_CHARS)
def test_label_rule_matches_rfc_1123(name: str) -> None:
    assert (validation.dns1123_label_errors(name) == []) == reference_label(name)


@settings(max_examples=100)
@given(NAME_CHARS)
def test_subdomain_rule_matches_rfc_1123(name: str) -> None:
    assert (validation.dns1123_subdomain_errors(name) == []) == reference_subdomain(name)


@settings(max_examples=100)
@given(st.from_regex(re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.ASCII), fullmatch=True))
def test_every_valid_label_is_accepted_as_a_namespace(name: str) -> None:
    validation.validate_create(RESOURCES["namespaces"], {"metadata": {"name": name}})


@settings(max_examples=100)
@given(NAME_CHARS.filter(lambda n: n != "" and not reference_label(n)))
def test_invalid_namespace_names_are_422_on_metadata_name(name: str) -> None:
    with pytest.raises(Invalid) as err:
        validation.validate_create(RESOURCES["namespaces"], {"metadata": {"name": name}})
    assert err.value.causes and all(c.field == "metadata.name" for c in err.value.causes)
    assert err.value.message.startswith(f'Namespace "{name}" is invalid: ')


def test_real_message_for_a_bad_name() -> None:
    with pytest.raises(Invalid) as err:
        validation.validate_create(RESOURCES["pods"], {
            "metadata": {"name": "Bad_Name", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        })
    assert str(err.value) == (
        'Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must '
        "consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )
    [cause] = err.value.causes
    assert cause.reason == "FieldValueInvalid"


def test_several_errors_are_listed_in_brackets() -> None:
    with pytest.raises(Invalid) as err:
        validation.validate_create(RESOURCES["pods"], {"metadata": {"name": "p", "namespace": "ns"},
                                                       "spec": {"containers": [{"name": "x"}, {"image": "i"}]}})
    assert err.value.message == (
        'Pod "p" is invalid: [spec.containers[0].image: Required value, spec.containers[1].name: Required value]'
    )
    assert [(c.reason, c.field) for c in err.value.causes] == [
        ("FieldValueRequired", "spec.containers[0].image"), ("FieldValueRequired", "spec.containers[1].name")]


def test_name_or_generate_name_is_required() -> None:
    with pytest.raises(Invalid) as err:
        validation.validate_create(RESOURCES["configmaps"], {"metadata": {"namespace": "ns"}})
    assert err.value.message == 'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required'


def test_services_are_dns_labels_and_rbac_names_may_hold_colons() -> None:
    # RelaxedServiceNameValidation is GA in 1.37: a leading digit is fine, a dot is not.
    assert not validation.name_errors("services", "1abc")
    assert validation.name_errors("services", "a.bc") == ["must not contain dots"]
    assert not validation.name_errors("services", "abc-1")
    assert not validation.name_errors("clusterroles", "system:controller:x")
    assert validation.name_errors("clusterroles", "a/b") == ["may not contain '/'"]


@settings(max_examples=100)
@given(st.dictionaries(st.text(alphabet="ab/.-_Z9", min_size=1, max_size=70), st.text(alphabet="ab.-_Z9 ", max_size=70),
                       max_size=3))
def test_labels_are_checked_key_and_value(labels: dict[str, str]) -> None:
    key_ok = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                        r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
    value_ok = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
    good = all(
        key_ok.match(k) and len(k.split("/")[-1]) <= 63 and len(k.split("/")[0]) <= 253
        and value_ok.match(v) and len(v) <= 63
        for k, v in labels.items()
    )
    obj = {"metadata": {"name": "x", "namespace": "ns", "labels": labels}}
    if good:
        validation.validate_create(RESOURCES["configmaps"], obj)
    else:
        with pytest.raises(Invalid) as err:
            validation.validate_create(RESOURCES["configmaps"], obj)
        assert all(c.field.startswith("metadata.labels") for c in err.value.causes)


def test_annotations_are_limited_in_total_size() -> None:
    obj = {"metadata": {"name": "x", "namespace": "ns", "annotations": {"a": "x" * (256 * 1024)}}}
    with pytest.raises(Invalid) as err:
        validation.validate_create(RESOURCES["configmaps"], obj)
    assert [c.field for c in err.value.causes] == ["metadata.annotations"]
    assert "Too long: must have at most 262144 bytes" in err.value.message


def test_binding_role_ref_is_immutable_and_required() -> None:
    rt = RESOURCES["rolebindings"]
    old = {"metadata": {"name": "b", "namespace": "ns"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}}
    new = {"metadata": {"name": "b", "namespace": "ns"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "other"}}
    with pytest.raises(Invalid) as err:
        validation.validate_update(rt, old, new)
    assert err.value.message == (
        'RoleBinding.rbac.authorization.k8s.io "b" is invalid: roleRef: Invalid value: '
        '{"APIGroup":"rbac.authorization.k8s.io","Kind":"Role","Name":"other"}: field is immutable'
    )
    with pytest.raises(Invalid) as err:
        validation.validate_create(rt, {"metadata": {"name": "b", "namespace": "ns"}, "roleRef": {}})
    assert {c.field for c in err.value.causes} == {"roleRef.apiGroup", "roleRef.kind", "roleRef.name"}


def test_owner_references_need_their_identity() -> None:
    obj = {"metadata": {"name": "x", "namespace": "ns",
                        "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p"}]}}
    with pytest.raises(Invalid) as err:
        validation.validate_create(RESOURCES["configmaps"], obj)
    assert [(c.field, c.message) for c in err.value.causes] == [
        ("metadata.ownerReferences.uid", 'Invalid value: "": uid must not be empty')]
