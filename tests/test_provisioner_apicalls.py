"""What a client is answered when the Kubernetes API refuses, conflicts or stalls during a launch.

The provisioner turns each API error met while launching into the launch error a user can act on
(:mod:`gateway.provisioner.apicalls`): 422 Invalid is the client's 400, 409 Conflict a 409, 403 a
403, 5xx and 429 a 503, no answer within the launch's time a 504; and its clean-up deletions retry
a briefly unavailable API.  First the mapping and the retries on a scripted cluster, then the
answers of ``POST /api/kernels`` on the embedded simulated cluster (tests/httpharness.py), where a
refused launch also leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.cluster.interface import (
    AlreadyExists,
    BadRequest,
    ClusterError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServerError,
    ServiceUnavailable,
    Timeout,
    TooManyRequests,
)
from gateway.provisioner import apicalls
from gateway.provisioner.apicalls import api, delete_quietly, launch_error, remaining
from gateway.provisioner.errors import (
    ClusterUnavailable,
    InvalidLaunch,
    LaunchConflict,
    LaunchError,
    LaunchForbidden,
    LaunchTimeout,
)
from tests.httpharness import USER, running_gateway

WHAT = "creating Pod kernel-1 in namespace alice"


@pytest.mark.parametrize(("error", "expected", "status"), [
    (Invalid("spec.containers[0].image: Required value"), InvalidLaunch, 400),
    (Conflict("the object has been modified"), LaunchConflict, 409),
    (AlreadyExists("pods \"kernel-1\" already exists"), LaunchConflict, 409),
    (Forbidden("pods is forbidden"), LaunchForbidden, 403),
    (ServerError("etcdserver: request timed out"), ClusterUnavailable, 503),
    (ServiceUnavailable("the server is shutting down"), ClusterUnavailable, 503),
    (Timeout("the server was unable to return a response in the time allotted"), ClusterUnavailable, 503),
    (TooManyRequests("too many requests"), ClusterUnavailable, 503),
    (BadRequest("the server rejected our request"), LaunchError, 500),
])
def test_each_api_error_becomes_the_launch_error_a_user_can_act_on(
        error: ClusterError, expected: type[LaunchError], status: int) -> None:
    mapped = launch_error(error, WHAT)
    assert type(mapped) is expected and mapped.status == status
    assert mapped.message == f"{WHAT}: {error.message}"


async def _answer(value: Any = None, *, error: BaseException | None = None) -> Any:
    if error is not None:
        raise error
    return value


async def test_a_call_returns_what_the_api_answered() -> None:
    deadline = asyncio.get_running_loop().time() + 5
    assert await api(_answer({"kind": "Pod"}), what=WHAT, deadline=deadline) == {"kind": "Pod"}


@pytest.mark.parametrize("error", [NotFound("pods \"kernel-1\" not found"), AlreadyExists("namespaces \"x\" exists")])
async def test_not_found_and_already_exists_reach_the_caller_as_they_are(error: ClusterError) -> None:
    deadline = asyncio.get_running_loop().time() + 5
    with pytest.raises(type(error)) as raised:
        await api(_answer(error=error), what=WHAT, deadline=deadline)
    assert raised.value is error


async def test_other_api_errors_are_launch_errors_naming_the_step() -> None:
    deadline = asyncio.get_running_loop().time() + 5
    with pytest.raises(InvalidLaunch) as raised:
        await api(_answer(error=Invalid("bad quantity")), what=WHAT, deadline=deadline)
    assert raised.value.status == 400 and raised.value.message == f"{WHAT}: bad quantity"
    assert isinstance(raised.value.__cause__, Invalid)


async def test_a_call_past_the_launch_deadline_is_a_timeout_naming_the_step() -> None:
    stalled = asyncio.Event()
    deadline = asyncio.get_running_loop().time() + 0.2
    with pytest.raises(LaunchTimeout) as raised:
        await api(stalled.wait(), what=WHAT, deadline=deadline)
    assert raised.value.status == 504
    assert raised.value.message == f"the Kubernetes API did not answer in time while {WHAT}"


async def test_a_call_made_past_the_deadline_gets_only_an_immediate_answer() -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() - 10
    assert remaining(deadline) == 0.0
    assert await api(_answer("at once"), what=WHAT, deadline=deadline) == "at once"
    answered = asyncio.Event()
    loop.call_later(0.2, answered.set)  # the API would answer, but only once the launch's time is long up
    with pytest.raises(LaunchTimeout):
        await api(answered.wait(), what=WHAT, deadline=deadline)


async def test_remaining_counts_down_to_the_deadline() -> None:
    now = asyncio.get_running_loop().time()
    assert 9.0 < remaining(now + 10) <= 10.0


class ScriptedDeletes:
    """A cluster whose deletions answer, in turn, what the test scripted (the last answer repeats)."""

    def __init__(self, *answers: BaseException | None) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, str | None, int | None]] = []

    async def delete(self, resource: str, name: str, *, namespace: str | None = None,
                     grace_period_seconds: int | None = None) -> dict[str, Any]:
        self.calls.append((resource, name, namespace, grace_period_seconds))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer is not None:
            raise answer
        return {"kind": "Status", "status": "Success"}


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clean-up's back-off between attempts, shortened (it is a pause before retrying, not a state wait)."""
    monkeypatch.setattr(apicalls, "CLEANUP_RETRY_SECONDS", 0.01)


async def test_a_deletion_passes_its_target_and_grace_period() -> None:
    cluster = ScriptedDeletes(None)
    assert await delete_quietly(cluster, "pods", "kernel-1", namespace="alice", grace_period_seconds=0)  # type: ignore[arg-type]
    assert cluster.calls == [("pods", "kernel-1", "alice", 0)]


@pytest.mark.parametrize("refusal", [ServiceUnavailable("etcd is electing a leader"), ServerError("internal error"),
                                     TooManyRequests("too many requests")], ids=["503", "500", "429"])
async def test_a_deletion_refused_twice_succeeds_on_the_third_attempt(refusal: ClusterError) -> None:
    cluster = ScriptedDeletes(refusal, refusal, None)
    assert await delete_quietly(cluster, "namespaces", "alice-k1") is True  # type: ignore[arg-type]
    assert len(cluster.calls) == 3


async def test_a_deletion_refused_three_times_is_given_up_without_raising() -> None:
    cluster = ScriptedDeletes(ServiceUnavailable("down"))
    assert await delete_quietly(cluster, "namespaces", "alice-k1") is False  # type: ignore[arg-type]
    assert len(cluster.calls) == 3


async def test_a_deletion_that_times_out_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apicalls, "CLEANUP_CALL_TIMEOUT", 0.05)
    stalled = asyncio.Event()

    class StallsOnce(ScriptedDeletes):
        async def delete(self, resource: str, name: str, **options: Any) -> dict[str, Any]:
            if not self.calls:
                self.calls.append((resource, name, None, None))
                await stalled.wait()
            return await super().delete(resource, name, **options)

    cluster = StallsOnce(None)
    assert await delete_quietly(cluster, "pods", "kernel-1", namespace="alice") is True  # type: ignore[arg-type]
    assert len(cluster.calls) == 2


@pytest.mark.parametrize("answer", [NotFound("gone"), Conflict("namespace alice-k1 is terminating")],
                         ids=["already-gone", "already-terminating"])
async def test_what_is_already_gone_or_going_counts_as_deleted(answer: ClusterError) -> None:
    cluster = ScriptedDeletes(answer)
    assert await delete_quietly(cluster, "namespaces", "alice-k1") is True  # type: ignore[arg-type]
    assert len(cluster.calls) == 1


@pytest.mark.parametrize("answer", [Forbidden("namespaces is forbidden"), Invalid("bad name")])
async def test_a_refusal_that_retrying_cannot_change_is_not_retried(answer: ClusterError) -> None:
    cluster = ScriptedDeletes(answer)
    assert await delete_quietly(cluster, "namespaces", "alice-k1") is False  # type: ignore[arg-type]
    assert len(cluster.calls) == 1


# ---------------------------------------------------------------------- what the HTTP client is answered


@pytest.mark.slow
@pytest.mark.parametrize(("error", "status"), [
    (Invalid("spec.containers[0].resources.limits: Invalid value"), 400),
    (Conflict("Operation cannot be fulfilled: the object has been modified"), 409),
    (Forbidden("pods is forbidden: exceeded quota"), 403),
    (ServiceUnavailable("the server is currently unable to handle the request"), 503),
], ids=["422", "409", "403", "503"])
async def test_a_refused_pod_creation_is_answered_with_its_status_and_leaves_nothing(
        tmp_path: Path, error: ClusterError, status: int) -> None:
    async with running_gateway(tmp_path) as gw:
        before = await gw.objects()
        gw.cluster.store.faults.inject("create", "pods", error=error)
        answer, body, _ = await gw.call("POST", "/api/kernels", {"env": {"KERNEL_USERNAME": USER}})
        assert answer == status, body
        assert body["message"].startswith("creating Pod ") and error.message in body["message"]
        assert (await gw.call("GET", "/api/kernels"))[1] == []
        assert await gw.objects() == before


@pytest.mark.slow
async def test_a_namespace_creation_the_api_never_answers_is_a_504_within_the_launch_timeout(tmp_path: Path) -> None:
    never = asyncio.Event()
    async with running_gateway(tmp_path) as gw:
        before = await gw.objects()
        gw.cluster.store.faults.inject("create", "namespaces", hold=never, times=1)
        answer, body, _ = await gw.call("POST", "/api/kernels", {"env": {"KERNEL_USERNAME": USER,
                                                                          "KERNEL_LAUNCH_TIMEOUT": "2"}})
        assert answer == 504, body
        assert "did not answer in time while creating Namespace" in body["message"]
        assert (await gw.call("GET", "/api/kernels"))[1] == []
        assert await gw.objects() == before
