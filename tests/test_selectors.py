"""Label and field selectors: what ``kubectl get -l`` and the gateway's watches rely on."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fakes.state.selectors import label_key_errors, label_value_errors, parse_field_selector, parse_label_selector
from gateway.cluster.interface import BadRequest

KEYS = st.sampled_from(["app", "tier", "kernelgate.io/kernel-id", "example.com/x_y", "a.b-c"])
VALUES = st.sampled_from(["", "kernel", "web", "v1.2", "A_b-c", "x" * 63])
LABELS = st.dictionaries(KEYS, VALUES, max_size=4)


@st.composite
def requirements(draw: st.DrawFn) -> tuple[str, str, tuple[str, ...]]:
    key = draw(KEYS)
    op = draw(st.sampled_from(["=", "==", "!=", "in", "notin", "exists", "!"]))
    if op in ("exists", "!"):
        return key, op, ()
    if op in ("in", "notin"):
        values = draw(st.lists(VALUES.filter(bool), min_size=1, max_size=3))
        return key, op, tuple(values)
    return key, op, (draw(VALUES),)


def render(req: tuple[str, str, tuple[str, ...]]) -> str:
    key, op, values = req
    if op == "exists":
        return key
    if op == "!":
        return f"!{key}"
    if op in ("in", "notin"):
        return f"{key} {op} ({', '.join(values)})"
    return f"{key}{op}{values[0]}"


def reference(req: tuple[str, str, tuple[str, ...]], labels: dict[str, str]) -> bool:
    """The documented meaning of one requirement (kubernetes.io labels concept page)."""
    key, op, values = req
    if op == "exists":
        return key in labels
    if op == "!":
        return key not in labels
    if op in ("=", "==", "in"):
        return key in labels and labels[key] in values
    return labels.get(key) not in values if key in labels else True


@settings(max_examples=100)
@given(st.lists(requirements(), max_size=4), LABELS)
def test_parsed_selectors_match_as_documented(reqs: list[tuple[str, str, tuple[str, ...]]],
                                              labels: dict[str, str]) -> None:
    selector = parse_label_selector(",".join(render(r) for r in reqs))
    assert selector.matches(labels) == all(reference(r, labels) for r in reqs)


_WORD = r"[^\s!=(),]+"
_TERMS = (
    (re.compile(rf"({_WORD})"), "exists"),
    (re.compile(rf"!\s*({_WORD})"), "!"),
    (re.compile(rf"({_WORD})\s*(==|=|!=)\s*({_WORD})?"), None),
    (re.compile(rf"({_WORD})\s+(in|notin)\s*\(([^()]*)\)"), None),
)


def kubernetes_reading(text: str) -> set[tuple[str, str, frozenset[str]]] | None:
    """The requirements Kubernetes reads in a label selector, or ``None`` where it refuses it.

    An oracle written from the grammar of apimachinery's ``labels.Parse``, term by term, rather than
    from our parser's tokens: terms are separated by commas outside parentheses; ``in`` and ``notin``
    are keywords, never keys; a set's values are separated by commas, an empty one being the empty
    value, and an empty set is refused.
    """
    terms, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth not in (0, 1):
            return None
        if char == "," and depth == 0:
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    read = set()
    for term in (t.strip() for t in terms):
        found = next(((m, kind) for pattern, kind in _TERMS if (m := pattern.fullmatch(term))), None)
        if found is None:
            return None
        match, op = found
        key = match.group(1)
        if key in ("in", "notin") or label_key_errors(key):
            return None
        if op is not None:
            values: frozenset[str] = frozenset()
        elif match.group(2) in ("in", "notin"):
            op = match.group(2)
            if not match.group(3).strip():
                return None
            values = frozenset(v.strip() for v in match.group(3).split(","))
        else:
            op = "!=" if match.group(2) == "!=" else "="
            values = frozenset({match.group(3) or ""})
        if any(" " in v or label_value_errors(v) for v in values):
            return None
        read.add((key, op, values))
    return read


@settings(max_examples=300)
@given(st.text(alphabet="abc=!(), in/._-", max_size=20) | st.lists(requirements(), max_size=3).map(
    lambda reqs: ",".join(render(r) for r in reqs)))
@example("a in (b c)")  # values need their commas
@example("a in (,b),c notin (d,,e)")  # an empty entry is the empty value
@example("a notin ()")  # no empty set, for notin either
@example("in=a")  # in and notin are keywords
@example("a in (in), b=notin")  # except as values
def test_any_text_parses_or_is_a_bad_request(text: str) -> None:
    expected = kubernetes_reading(text) if text.strip() else set()
    try:
        selector = parse_label_selector(text)
    except BadRequest:
        assert expected is None, f"{text!r} is a valid selector: {expected}"
        return
    assert expected is not None, f"{text!r} was accepted, but Kubernetes refuses it"
    assert {(r.key, r.op, frozenset(r.values)) for r in selector.requirements} == expected
    # What parsed is a selector of valid keys and values, and means what it says: written back in
    # the documented syntax it parses to the same requirements.
    for req in selector.requirements:
        assert not label_key_errors(req.key), req
        assert all(not label_value_errors(value) for value in req.values), req
        assert req.op in ("=", "!=", "in", "notin", "exists", "!"), req
        assert (len(req.values) == 0) == (req.op in ("exists", "!")), req
    rendered = ",".join(render((r.key, r.op, r.values)) for r in selector.requirements)
    assert parse_label_selector(rendered) == selector


@pytest.mark.parametrize("bad", ["app=", "app in (a", "app in a", "=x", "app=x,", "app==x==y", "a b", "-bad=x",
                                 "app=" + "x" * 64, "app in ()"])
def test_malformed_selectors_are_bad_requests(bad: str) -> None:
    if bad == "app=":
        # An empty value is legal: it selects objects whose label is empty.
        assert parse_label_selector(bad).matches({"app": ""})
        return
    with pytest.raises(BadRequest):
        parse_label_selector(bad)


def test_empty_selector_matches_everything() -> None:
    assert parse_label_selector(None).matches(None)
    assert parse_label_selector("  ").matches({"a": "b"})


def test_field_selectors_on_pods() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    assert parse_field_selector("status.phase=Running,spec.nodeName==n1", "pods").matches(pod)
    assert not parse_field_selector("status.phase!=Running", "pods").matches(pod)
    assert parse_field_selector("spec.nodeName=", "pods").matches({"metadata": {"name": "q"}})
    assert parse_field_selector("metadata.name=p,metadata.namespace=ns", "pods").single_name() == "p"


@settings(max_examples=50)
@given(st.sampled_from(["configmaps", "secrets", "services", "roles"]),
       st.sampled_from(["status.phase", "spec.nodeName", "data.x", "metadata.labels"]))
def test_fields_a_resource_does_not_index_are_refused(resource: str, field: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_field_selector(f"{field}=x", resource)
    if resource in ("secrets", "services"):  # kinds with a field label conversion of their own
        assert err.value.message == f"field label not supported: {field}"
    else:  # runtime.DefaultMetaV1FieldSelectorConversion
        assert err.value.message == f'"{field}" is not a known field selector: only "metadata.name", "metadata.namespace"'


def test_field_selector_values_may_escape_separators() -> None:
    obj = {"metadata": {"name": "a,b"}}
    assert parse_field_selector(r"metadata.name=a\,b", "configmaps").matches(obj)
