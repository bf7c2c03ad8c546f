"""The simulated API server answers as the real one: the same random request sequences, compared.

Hypothesis draws sequences of requests (:mod:`tests.differential.requests`:
create, get, list, replace, patch in its three formats, server-side apply,
delete (with delete options and preconditions) and a short watch, over
namespaces, pods, service accounts, secrets, config maps, role bindings,
leases and events; valid and invalid names and bodies, label and field
selectors, old, current, malformed and future resourceVersions).
Each sequence runs against the simulated API server and the real control
plane (:mod:`e2e.kube`), each in a fresh namespace of the same name, and every
answer must agree once :func:`tests.differential.normalize.normalize` has set
aside what each server picks by itself.  The differences that remain are
listed in docs/known-differences.md: ``normalize`` sets aside those no client
can notice, and :func:`tests.differential.requests.sequences` does not send the
few a client can (a step on a namespace after deleting it, say).

It needs the real control plane: it runs with ``--cluster=kube`` (``make
test-kube``) and is skipped otherwise.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings

from e2e.kube.launcher import ControlPlane
from fakes.serve import SimulatedClusterThread
from tests.differential.normalize import normalize
from tests.differential.requests import History, Step, send, sequences
from tests.differential.wire import Wire


@pytest.fixture(scope="module")
def servers(request: pytest.FixtureRequest) -> Iterator[tuple[Wire, Wire]]:
    clusters = [n.strip() for n in str(request.config.getoption("clusters")).split(",")]
    if "kube" not in clusters:
        pytest.skip("the differential test needs the real control plane: run it with --cluster=kube")
    plane: ControlPlane = request.getfixturevalue("kube_cluster")
    with SimulatedClusterThread(node_agent=False) as simulated:
        fake, real = Wire(simulated.kubeconfig_path), Wire(plane.admin_kubeconfig)
        try:
            yield fake, real
        finally:
            fake.close()
            real.close()


def _namespace(wire: Wire, name: str) -> None:
    answer = wire.send("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    assert answer.status == 201, answer.text


def run(wire: Wire, namespace: str, sequence: list[Step]) -> list[Any]:
    """Send ``sequence`` to one server in ``namespace``; the normalized answers."""
    history = History()
    answers = []
    for step in sequence:
        answer = send(wire, history, step, namespace)
        answers.append(normalize(answer.status, answer.body))
    return answers


@pytest.mark.timeout(900)  # the whole search: a hundred sequences against two servers
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(sequence=sequences())
def test_the_simulated_api_server_answers_as_the_real_one(servers: tuple[Wire, Wire], sequence: list[Step]) -> None:
    fake, real = servers
    for step in sequence:
        event(f"{step.verb} {step.resource}")  # coverage, shown by --hypothesis-show-statistics
    namespace = f"diff-{uuid.uuid4().hex[:8]}"
    for wire in (fake, real):
        _namespace(wire, namespace)
    try:
        got, want = run(fake, namespace, sequence), run(real, namespace, sequence)
    finally:
        for wire in (fake, real):
            wire.send("DELETE", f"/api/v1/namespaces/{namespace}")
    for step, mine, theirs in zip(sequence, got, want, strict=True):
        assert mine == theirs, (
            f"{step.describe()}\n simulated: {json.dumps(mine, sort_keys=True)}\n real:      "
            f"{json.dumps(theirs, sort_keys=True)}")
