"""The launcher's command line and environment.

Every option can come from the command line or from the environment the
kernel image's ``bootstrap-kernel.sh`` sees (Enterprise Gateway's names, so a
pod rendered from an EG kernel-pod template works); the command line wins.
"""

from __future__ import annotations

import argparse
import ipaddress
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_KERNEL_CLASS = "ipykernel.ipkernel.IPythonKernel"
DEFAULT_RESPONSE_TIMEOUT = 60.0
MIN_PORT_RANGE_SIZE = 6
CONNECTION_FILE_PLACEHOLDER = "{connection_file}"
KERNEL_CMD_ENV = "LAUNCHER_KERNEL_CMD"
"""The environment's kernel command template.  Not a ``KERNEL_*`` name: clients may set those."""
"""Five kernel ports and the comm port must fit in a port range."""


class UsageError(ValueError):
    """A missing or malformed option; the launcher exits 2 with this message."""


@dataclass(frozen=True)
class LaunchOptions:
    kernel_id: str
    response_host: str
    response_port: int
    public_keys: tuple[str, ...]
    """The gateway's public keys as given, command line first; see :meth:`ResponseKey.choose`."""
    bind_ip: str = "0.0.0.0"
    port_range: tuple[int, int] | None = None
    kernel_class_name: str = DEFAULT_KERNEL_CLASS
    spark_context_initialization_mode: str = "none"
    language: str = "python"
    response_timeout: float = 60.0
    """How long to keep trying to deliver the payload before giving up."""
    kernel_cmd: tuple[str, ...] | None = None
    """The kernel's command line with ``{connection_file}`` in it (R, Scala...); ``None`` runs an IPython kernel."""

    def kernel_argv(self, connection_file: str) -> tuple[str, ...] | None:
        """The kernel command with the connection file's path in place of ``{connection_file}``."""
        if self.kernel_cmd is None:
            return None
        return tuple(arg.replace(CONNECTION_FILE_PLACEHOLDER, connection_file) for arg in self.kernel_cmd)

    def __repr__(self) -> str:  # the public key is harmless but long; keep log lines short
        return f"LaunchOptions(kernel_id={self.kernel_id!r}, response={self.response_host}:{self.response_port})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway.launcher", description=__doc__)
    parser.add_argument("--kernel-id", help="the kernel's id (env KERNEL_ID)")
    parser.add_argument(
        "--response-address",
        metavar="HOST:PORT",
        help="the gateway's response address (env EG_RESPONSE_ADDRESS, RESPONSE_ADDRESS)",
    )
    parser.add_argument("--public-key", help="the gateway's public key, base64 (env KERNEL_RESPONSE_KEY, PUBLIC_KEY)")
    parser.add_argument(
        "--port-range", metavar="LOW..HIGH", help="ports the kernel may use (env PORT_RANGE, EG_PORT_RANGE)"
    )
    parser.add_argument(
        "--ip", dest="bind_ip", help="address to bind the kernel on (env KERNEL_POD_IP; default 0.0.0.0)"
    )
    parser.add_argument("--kernel-class-name", help=f"the kernel class (default {DEFAULT_KERNEL_CLASS})")
    parser.add_argument(
        "--kernel-cmd",
        metavar="COMMAND",
        help="run this kernel instead of an IPython one, a shell-quoted command line holding "
        f"{CONNECTION_FILE_PLACEHOLDER} (env {KERNEL_CMD_ENV}), e.g. "
        "\"R --slave -e 'IRkernel::main()' --args {connection_file}\"",
    )
    parser.add_argument(
        "--spark-context-initialization-mode",
        choices=["none", "lazy", "eager"],
        help="accepted for EG compatibility; only 'none' is supported",
    )
    parser.add_argument(
        "--response-timeout",
        type=float,
        help="seconds to keep trying to reach the gateway (default: env KERNEL_LAUNCH_TIMEOUT, else 60)",
    )
    # EG's launchers take a deprecated positional connection file; accept and ignore it.
    parser.add_argument("connection_file", nargs="?", help=argparse.SUPPRESS)
    return parser


def parse_options(argv: Sequence[str], env: Mapping[str, str]) -> LaunchOptions:
    """Build the options (called once by :func:`gateway.launcher.main.main`).

    Raises :class:`UsageError` for anything missing or malformed.
    """
    args = _parser().parse_args(list(argv))

    def pick(value: str | None, *names: str) -> str | None:
        if value:
            return value
        for name in names:
            if env.get(name):
                return env[name]
        return None

    kernel_id = pick(args.kernel_id, "KERNEL_ID")
    if not kernel_id:
        raise UsageError("a kernel id is required (--kernel-id or KERNEL_ID)")
    address = pick(args.response_address, "EG_RESPONSE_ADDRESS", "RESPONSE_ADDRESS")
    if not address:
        raise UsageError("a response address is required (--response-address or RESPONSE_ADDRESS)")
    host, port = _parse_address(address)
    public_keys = tuple(key for key in (args.public_key, env.get("KERNEL_RESPONSE_KEY"), env.get("PUBLIC_KEY")) if key)
    if not public_keys:
        raise UsageError("the gateway's public key is required (--public-key or KERNEL_RESPONSE_KEY)")
    bind_ip = pick(args.bind_ip, "KERNEL_POD_IP") or "0.0.0.0"
    try:
        ipaddress.IPv4Address(bind_ip)
    except ValueError as exc:
        raise UsageError(f"bind address {bind_ip!r} is not an IPv4 address") from exc
    port_range_text = pick(args.port_range, "PORT_RANGE", "EG_PORT_RANGE")
    timeout = args.response_timeout
    if timeout is None:
        # The gateway stops waiting after the launch timeout, so trying longer would be pointless.
        try:
            timeout = float(env.get("KERNEL_LAUNCH_TIMEOUT") or DEFAULT_RESPONSE_TIMEOUT)
        except ValueError:
            timeout = DEFAULT_RESPONSE_TIMEOUT
    if not timeout > 0:
        raise UsageError("the response timeout must be positive")
    spark_mode = (pick(args.spark_context_initialization_mode, "SPARK_CONTEXT_INITIALIZATION_MODE") or "none").lower()
    return LaunchOptions(
        kernel_id=kernel_id,
        response_host=host,
        response_port=port,
        public_keys=public_keys,
        bind_ip=bind_ip,
        port_range=parse_port_range(port_range_text) if port_range_text else None,
        kernel_class_name=args.kernel_class_name or DEFAULT_KERNEL_CLASS,
        spark_context_initialization_mode=spark_mode,
        language=(env.get("KERNEL_LANGUAGE") or "python").lower(),
        response_timeout=timeout,
        kernel_cmd=parse_kernel_cmd(pick(args.kernel_cmd, KERNEL_CMD_ENV)),
    )


def parse_kernel_cmd(text: str | None) -> tuple[str, ...] | None:
    """Split a kernel command template as a POSIX shell would (no expansion, nothing run by a shell).

    Raises :class:`UsageError` unless it names a program and passes
    ``{connection_file}``: without it the kernel could not know its ports and key.
    """
    if text is None or not text.strip():
        return None
    try:
        argv = tuple(shlex.split(text))
    except ValueError as exc:
        raise UsageError(f"kernel command is not a valid command line: {exc}") from exc
    if not any(CONNECTION_FILE_PLACEHOLDER in arg for arg in argv[1:]):
        raise UsageError(f"kernel command must pass {CONNECTION_FILE_PLACEHOLDER} to the kernel")
    return argv


def _parse_address(address: str) -> tuple[str, int]:
    host, sep, port_text = address.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"response address {address!r} is not HOST:PORT")
    return host.strip("[]"), int(port_text)


def parse_port_range(text: str) -> tuple[int, int] | None:
    """``"LOW..HIGH"`` to a pair; ``"0..0"`` (EG's "no range") to ``None``."""
    low_text, sep, high_text = text.strip().partition("..")
    if not sep or not low_text.isdigit() or not high_text.isdigit():
        raise UsageError(f"port range {text!r} is not LOW..HIGH")
    low, high = int(low_text), int(high_text)
    if low == high == 0:
        return None
    if not 0 < low <= high < 65536 or high - low + 1 < MIN_PORT_RANGE_SIZE:
        raise UsageError(f"port range {text!r} must lie within 1..65535 and hold at least {MIN_PORT_RANGE_SIZE} ports")
    return low, high
