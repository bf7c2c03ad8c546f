"""A client's env becomes a kernel's environment only through Enterprise Gateway's rules."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.kernels.env import MAX_ENV_BYTES, MAX_VALUE_LENGTH, kernel_environment
from gateway.kernels.errors import InvalidKernelRequest
from gateway.kernels.settings import KernelSettings

SETTINGS = KernelSettings(launch_timeout=40.0, max_launch_timeout=300.0,
                          inherited_env={"PATH": "/gateway/bin", "TZ": "UTC"})


def build(client_env: Any, *, settings: KernelSettings = SETTINGS, spec_env: dict[str, str] | None = None,
          fallback: str = "gateway-user"):
    return kernel_environment(client_env, spec_env=spec_env or {}, settings=settings, username_fallback=fallback)


def test_only_kernel_variables_pass_by_default() -> None:
    resolved = build({"KERNEL_USERNAME": "alice", "KERNEL_VAR": "x", "HOME": "/root", "AWS_SECRET": "s"})
    assert resolved.env["KERNEL_VAR"] == "x" and resolved.username == "alice"
    assert "HOME" not in resolved.env and "AWS_SECRET" not in resolved.env


def test_client_envs_allow_named_variables_and_star_allows_all() -> None:
    named = build({"JUPYTER_X": "1", "OTHER": "2"}, settings=KernelSettings(client_envs=frozenset({"JUPYTER_X"})))
    assert named.env["JUPYTER_X"] == "1" and "OTHER" not in named.env
    every = build({"JUPYTER_X": "1", "OTHER": "2"}, settings=KernelSettings(client_envs=frozenset({"*"})))
    assert every.env["JUPYTER_X"] == "1" and every.env["OTHER"] == "2"


def test_layering_inherited_then_kernelspec_then_client() -> None:
    resolved = build({"KERNEL_A": "client", "KERNEL_GATEWAY": "0"},
                     spec_env={"KERNEL_A": "spec", "KERNEL_B": "spec", "TZ": "Europe/Paris"})
    assert resolved.env["PATH"] == "/gateway/bin"
    assert resolved.env["TZ"] == "Europe/Paris"
    assert resolved.env["KERNEL_A"] == "client" and resolved.env["KERNEL_B"] == "spec"
    assert resolved.env["KERNEL_GATEWAY"] == "1"


def test_auth_tokens_never_pass_from_anywhere() -> None:
    settings = KernelSettings(client_envs=frozenset({"*"}), inherited_env={"EG_AUTH_TOKEN": "gw", "KG_AUTH_TOKEN": "kg"})
    resolved = build({"EG_AUTH_TOKEN": "client", "KG_AUTH_TOKEN": "client"}, settings=settings,
                     spec_env={"EG_AUTH_TOKEN": "spec"})
    assert "EG_AUTH_TOKEN" not in resolved.env and "KG_AUTH_TOKEN" not in resolved.env


def test_working_dir_passes_only_when_mirrored() -> None:
    assert "KERNEL_WORKING_DIR" not in build({"KERNEL_WORKING_DIR": "/home/alice"}).env
    mirrored = build({"KERNEL_WORKING_DIR": "/home/alice"}, settings=KernelSettings(mirror_working_dirs=True))
    assert mirrored.env["KERNEL_WORKING_DIR"] == "/home/alice"


def test_username_falls_back_and_id_is_made() -> None:
    resolved = build(None)
    assert resolved.username == "gateway-user" and resolved.env["KERNEL_USERNAME"] == "gateway-user"
    assert uuid.UUID(resolved.kernel_id).version == 4 and resolved.env["KERNEL_ID"] == resolved.kernel_id
    assert not resolved.client_chose_id
    assert build({"KERNEL_USERNAME": ""}).username == "gateway-user"


def test_a_client_uuid4_is_kept() -> None:
    kernel_id = str(uuid.uuid4())
    resolved = build({"KERNEL_ID": kernel_id})
    assert resolved.kernel_id == kernel_id and resolved.client_chose_id


def test_launch_timeout_from_client_capped_else_gateways() -> None:
    assert build({}).timeout == 40.0 and "KERNEL_LAUNCH_TIMEOUT" not in build({}).env
    assert build({"KERNEL_LAUNCH_TIMEOUT": "12.5"}).timeout == 12.5
    capped = build({"KERNEL_LAUNCH_TIMEOUT": "100000"})
    assert capped.timeout == 300.0 and capped.env["KERNEL_LAUNCH_TIMEOUT"] == "300"


HUGE = "v" * (MAX_VALUE_LENGTH + 1)

BAD_REQUESTS = [
    # (client env, the variable the message must name)
    ({"KERNEL_X": HUGE}, "KERNEL_X"),
    ({"KERNEL_X": "a$HOME"}, "KERNEL_X"),
    ({"KERNEL_X": "a`id`"}, "KERNEL_X"),
    ({"KERNEL_X": "line\nbreak"}, "KERNEL_X"),
    ({"KERNEL_X": "carriage\rreturn"}, "KERNEL_X"),
    ({"KERNEL_X": "nul\0byte"}, "KERNEL_X"),
    ({"KERNEL_X": "lone\ud800surrogate"}, "KERNEL_X"),
    ({"KERNEL_X": 5}, "KERNEL_X"),
    ({"KERNEL_X": None}, "KERNEL_X"),
    ({"KERNEL_X": ["a"]}, "KERNEL_X"),
    ({"KERNEL_BAD-NAME": "v"}, "KERNEL_BAD-NAME"),
    ({"KERNEL_ SPACE": "v"}, "KERNEL_ SPACE"),
    ({"KERNEL_ID": "not-a-uuid"}, "KERNEL_ID"),
    ({"KERNEL_ID": str(uuid.uuid1())}, "KERNEL_ID"),
    ({"KERNEL_ID": str(uuid.uuid4()).upper()}, "KERNEL_ID"),
    ({"KERNEL_ID": str(uuid.uuid4()).replace("-", "")}, "KERNEL_ID"),
    ({"KERNEL_LAUNCH_TIMEOUT": "0"}, "KERNEL_LAUNCH_TIMEOUT"),
    ({"KERNEL_LAUNCH_TIMEOUT": "-3"}, "KERNEL_LAUNCH_TIMEOUT"),
    ({"KERNEL_LAUNCH_TIMEOUT": "soon"}, "KERNEL_LAUNCH_TIMEOUT"),
    ({"KERNEL_LAUNCH_TIMEOUT": "inf"}, "KERNEL_LAUNCH_TIMEOUT"),
    ({"KERNEL_LAUNCH_TIMEOUT": "nan"}, "KERNEL_LAUNCH_TIMEOUT"),
    ({"KERNEL_USERNAME": "x" * 5000}, "KERNEL_USERNAME"),
    (["KERNEL_X", "v"], "env"),
    ("KERNEL_X=v", "env"),
]


@pytest.mark.parametrize(("client_env", "named"), BAD_REQUESTS)
def test_bad_requests_are_refused_naming_the_variable(client_env: Any, named: str) -> None:
    with pytest.raises(InvalidKernelRequest) as caught:
        build(client_env)
    assert caught.value.status == 400
    assert named in caught.value.message
    assert HUGE not in caught.value.message and "x" * 100 not in caught.value.message


def test_the_whole_environment_is_bounded_so_the_kernels_record_fits_any_api_server() -> None:
    value = "v" * MAX_VALUE_LENGTH
    each = len("KERNEL_V000") + MAX_VALUE_LENGTH
    fits = {f"KERNEL_V{i:03}": value for i in range(MAX_ENV_BYTES // each)}
    assert build(fits).env.keys() >= fits.keys()
    with pytest.raises(InvalidKernelRequest) as caught:
        build({**fits, "KERNEL_ONE_MORE": value})
    size = len(fits) * each + len("KERNEL_ONE_MORE") + MAX_VALUE_LENGTH
    assert caught.value.status == 400
    assert caught.value.message == (f"The kernel's environment is too large: {size} bytes in {len(fits) + 1} "
                                    f"variables, at most {MAX_ENV_BYTES} are allowed.")
    # What does not reach the kernel does not count (Jupyter Server sends its whole environment).
    assert build({"NOT_PASSED": "x" * 2 * MAX_ENV_BYTES, **fits}).env.keys() >= fits.keys()


def test_dropped_variables_are_not_checked() -> None:
    """Jupyter Server sends its whole environment; what does not pass is ignored, whatever it holds."""
    assert "PS1" not in build({"PS1": "$ ", "BAD-NAME": "\n", "LIST": ["x"]}).env


def test_a_huge_name_is_not_repeated() -> None:
    with pytest.raises(InvalidKernelRequest) as caught:
        build({"KERNEL_" + "-" * 10_000: "v"})
    assert len(caught.value.message) < 200


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.from_regex(r"KERNEL_[A-Z_]{1,8}", fullmatch=True), st.text(max_size=50), max_size=5))
def test_any_accepted_value_is_safe_and_kept(client_env: dict[str, str]) -> None:
    client_env.pop("KERNEL_ID", None)
    client_env.pop("KERNEL_LAUNCH_TIMEOUT", None)
    try:
        resolved = build(client_env)
    except InvalidKernelRequest:
        assert any(set(v) & set("$`\n\r\0") for v in client_env.values())
        return
    for name, value in client_env.items():
        if name == "KERNEL_USERNAME" and not value:
            continue
        if name != "KERNEL_GATEWAY":
            assert resolved.env[name] == value
    assert not any(set(v) & set("$`\n\r\0") for n, v in resolved.env.items() if n in client_env)
