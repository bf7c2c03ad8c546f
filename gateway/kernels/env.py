"""A client's ``env`` turned into a kernel's environment, checked as Enterprise Gateway checks it.

:func:`kernel_environment` is called by the kernel service for every
``POST /api/kernels`` before anything is launched or counted.  The rules
(Enterprise Gateway's ``_build_kernel_env`` and ``RemoteKernelManager``):

* only ``KERNEL_*`` names and those ``EG_CLIENT_ENVS`` allows (``*``: all) pass;
  other names are dropped silently, as Jupyter Server sends its whole
  filtered ``os.environ``;
* every name that passes must be a valid environment variable name, every
  value a string of at most 4096 characters without ``$``, a backtick, a
  newline, a carriage return or a NUL (they would be interpreted by a shell
  or a template somewhere on the way), nor an unpaired surrogate (``\ud800``
  in the request's JSON: not text a process environment can hold); together
  they may hold at most 256 KiB (the API server would refuse the kernel's
  record past 1 MiB);
* the environment is built from the gateway's ``EG_INHERITED_ENVS``, then the
  kernelspec's ``env``, then the client's values (the client wins), then
  ``KERNEL_GATEWAY=1``; ``EG_AUTH_TOKEN`` and ``KG_AUTH_TOKEN`` never pass;
* ``KERNEL_VOLUMES`` and ``KERNEL_VOLUME_MOUNTS`` must be what Enterprise
  Gateway's pod template takes, a YAML list of mappings, and name only the
  volume kinds and mount fields ``gateway.objects.egtemplate`` allows (never a
  ``hostPath`` or a Secret);
* ``KERNEL_USERNAME`` defaults to the caller's fallback (the gateway's user);
* ``KERNEL_WORKING_DIR`` (Jupyter Server sends its own working directory) is
  dropped unless ``EG_MIRROR_WORKING_DIRS`` is set;
* a client's ``KERNEL_ID`` must be a canonical uuid4, otherwise one is made;
* a client's ``KERNEL_LAUNCH_TIMEOUT`` must be a positive number of seconds
  and is capped at ``max_launch_timeout``; without it the gateway's launch
  timeout applies.

A request without ``env`` gets the inherited variables and the kernelspec's,
never the gateway's whole environment (which Enterprise Gateway passes on).

Every refusal is an :class:`~gateway.kernels.errors.InvalidKernelRequest` whose
message names the variable and never repeats its value.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.objects.egtemplate import VOLUME_VARIABLES, parse_volume_list

from .errors import InvalidKernelRequest
from .settings import KernelSettings

MAX_VALUE_LENGTH = 4096
MAX_ENV_BYTES = 256 * 1024
"""What a client's passed variables may hold in all (names and values, UTF-8): the kernel's record (a Secret,
at most 1 MiB on any API server) and its pod's spec carry them, and room must be left for the rest."""
FORBIDDEN_CHARACTERS = frozenset("$`\n\r\0")
NEVER_PASSED = frozenset({"EG_AUTH_TOKEN", "KG_AUTH_TOKEN"})
WORKING_DIR = "KERNEL_WORKING_DIR"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SHOWN_NAME_LENGTH = 64


@dataclass(frozen=True)
class KernelEnvironment:
    """What a start request resolves to: the kernel's id, user, launch timeout and pod environment."""

    kernel_id: str
    username: str
    timeout: float
    env: Mapping[str, str]
    client_chose_id: bool


def kernel_environment(
    client_env: Any,
    *,
    spec_env: Mapping[str, str],
    settings: KernelSettings,
    username_fallback: str,
) -> KernelEnvironment:
    """Validate a client's ``env`` (the request body's ``env``, possibly ``None``) and build the kernel's.

    Raises :class:`InvalidKernelRequest` for the first bad name or value.
    """
    client = _client_values(client_env, settings.client_envs)
    if not settings.mirror_working_dirs:
        client.pop(WORKING_DIR, None)
    env: dict[str, str] = dict(settings.inherited_env)
    env.update(spec_env)
    env.update(client)
    env["KERNEL_GATEWAY"] = "1"
    for name in NEVER_PASSED:
        env.pop(name, None)

    username = client.get("KERNEL_USERNAME") or username_fallback
    env["KERNEL_USERNAME"] = username

    client_id = client.get("KERNEL_ID")
    kernel_id = _kernel_id(client_id) if client_id is not None else str(uuid.uuid4())
    env["KERNEL_ID"] = kernel_id

    timeout = settings.launch_timeout
    if "KERNEL_LAUNCH_TIMEOUT" in client:
        timeout = min(_launch_timeout(client["KERNEL_LAUNCH_TIMEOUT"]), settings.max_launch_timeout)
        env["KERNEL_LAUNCH_TIMEOUT"] = _seconds_text(timeout)
    return KernelEnvironment(kernel_id=kernel_id, username=username, timeout=timeout, env=env,
                             client_chose_id=client_id is not None)


def is_passed(name: str, client_envs: frozenset[str]) -> bool:
    """Whether a client env name reaches the kernel: ``KERNEL_*``, or allowed by ``EG_CLIENT_ENVS``."""
    if name in NEVER_PASSED:
        return False
    return name.startswith("KERNEL_") or "*" in client_envs or name in client_envs


def _client_values(client_env: Any, client_envs: frozenset[str]) -> dict[str, str]:
    if client_env is None:
        return {}
    if not isinstance(client_env, Mapping):
        raise InvalidKernelRequest("The kernel's env must be a JSON object of strings.")
    passed: dict[str, str] = {}
    for name, value in client_env.items():
        if not isinstance(name, str):
            raise InvalidKernelRequest("Environment variable names must be strings.")
        if not is_passed(name, client_envs):
            continue
        if not ENV_NAME.match(name):
            raise InvalidKernelRequest(f"{_shown_name(name)} is not a valid environment variable name.")
        passed[name] = _checked_value(name, value)
        if name in VOLUME_VARIABLES:
            parse_volume_list(name, passed[name])
    size = sum(len(name.encode()) + len(value.encode()) for name, value in passed.items())
    if size > MAX_ENV_BYTES:
        raise InvalidKernelRequest(f"The kernel's environment is too large: {size} bytes in {len(passed)} variables, "
                                   f"at most {MAX_ENV_BYTES} are allowed.")
    return passed


def _checked_value(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidKernelRequest(f"The value of {name} must be a string.")
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidKernelRequest(
            f"The value of {name} is too long: {len(value)} characters, at most {MAX_VALUE_LENGTH} are allowed."
        )
    bad = sorted(FORBIDDEN_CHARACTERS.intersection(value))
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise InvalidKernelRequest(f"The value of {name} contains a forbidden character ({shown}).")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # JSON's "\ud800" escape: no process environment or pod spec can hold it
        raise InvalidKernelRequest(f"The value of {name} is not Unicode text: it holds an unpaired surrogate.") from None
    return value


def _kernel_id(value: str) -> str:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.version != 4 or str(parsed) != value:
        raise InvalidKernelRequest("KERNEL_ID must be a canonical uuid4 (lower-case, with hyphens).")
    return value


def _launch_timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidKernelRequest("KERNEL_LAUNCH_TIMEOUT must be a positive number of seconds.")
    return seconds


def _seconds_text(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else repr(seconds)


def _shown_name(name: str) -> str:
    return repr(name if len(name) <= _SHOWN_NAME_LENGTH else name[:_SHOWN_NAME_LENGTH] + "...")
