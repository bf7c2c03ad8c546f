"""Who the kernel pod runs as, and the env a client may give it.

``KERNEL_UID``/``KERNEL_GID`` set the security context; prohibited ids (root
by default) are refused with 403 and malformed ones with 400, as is env that
cannot be a process environment; the launcher's env may not contradict the
kernel's identity.
"""

from __future__ import annotations

import pytest

from gateway.objects.errors import ForbiddenKernelRequest, InvalidKernelRequest
from tests.kernelpods import build


def test_the_kernel_runs_as_kernel_uid_and_gid():
    pod = build(env={"KERNEL_UID": "1234", "KERNEL_GID": "1235"}).pod
    assert pod["spec"]["securityContext"] == {
        "runAsUser": 1234, "runAsGroup": 1235, "fsGroup": 1235, "runAsNonRoot": True,
    }
    env = {entry["name"]: entry["value"] for entry in pod["spec"]["containers"][0]["env"]}
    assert (env["KERNEL_UID"], env["KERNEL_GID"]) == ("1234", "1235")


@pytest.mark.parametrize("variable", ["KERNEL_UID", "KERNEL_GID"])
def test_root_is_refused_by_default_with_403(variable):
    with pytest.raises(ForbiddenKernelRequest, match=variable) as raised:
        build(env={variable: "0"})
    assert raised.value.status == 403


def test_the_caller_decides_which_ids_are_prohibited():
    pod = build(env={"KERNEL_UID": "0"}, prohibited_uids=()).pod
    assert pod["spec"]["securityContext"]["runAsUser"] == 0
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is False
    with pytest.raises(ForbiddenKernelRequest):
        build(env={"KERNEL_UID": "1000"}, prohibited_uids={0, 1000})


@pytest.mark.parametrize("value", ["-1", "1.5", "root", "99999999999", "2147483648", " 1"])
def test_malformed_ids_are_client_errors(value):
    with pytest.raises(InvalidKernelRequest, match="KERNEL_UID"):
        build(env={"KERNEL_UID": value})


@pytest.mark.parametrize(
    "env", [{"KERNEL_X": 3}, {"KERNEL X": "v"}, {"": "v"}, {"KERNEL_X": "a\x00b"}, {"1KERNEL": "v"}]
)
def test_env_that_cannot_be_a_process_environment_is_a_client_error(env):
    with pytest.raises(InvalidKernelRequest):
        build(env=env)


def test_launcher_env_may_not_contradict_the_kernel_identity():
    with pytest.raises(ValueError, match="KERNEL_ID"):
        build(launcher_env={"KERNEL_ID": "another"})
