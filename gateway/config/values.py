"""How a setting's text is read: booleans, integers, seconds and lists, as Enterprise Gateway reads them.

The ``parse_*`` functions turn one value into a Python value or raise a
:class:`ConfigError` naming the variable; the ``*_env`` readers fetch an
``EG_*`` variable and fall back to its default when it is unset (or blank,
for the scalar readers).  The settings groups of ``gateway.config`` call the
readers from their traitlets ``@default`` methods, so a bad value surfaces
while :class:`~gateway.config.GatewayConfig` is built.

Booleans are ``True``/``False`` in any case (also ``1``/``0``, ``yes``/``no``,
``on``/``off``); lists are comma-separated, or the Python list literal the seed's
deployment gives ``EG_KERNEL_WHITELIST`` (``"['r_kubernetes','python_kubernetes']"``),
parsed as a literal (never evaluated).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
_SHOWN_VALUE_LENGTH = 40


class ConfigError(ValueError):
    """A setting has a value the gateway cannot run with; the message names the variable."""


def shown(value: str) -> str:
    """The value for an error message, cut short (an operator's typo, not a dump)."""
    return repr(value if len(value) <= _SHOWN_VALUE_LENGTH else value[:_SHOWN_VALUE_LENGTH] + "...")


def parse_bool(name: str, value: str) -> bool:
    """``True``/``False`` (any case), ``1``/``0``, ``yes``/``no``, ``on``/``off``; anything else is a :class:`ConfigError`."""
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name} must be True or False, not {shown(value)}")


def parse_int(name: str, value: str, *, minimum: int | None = None) -> int:
    """A whole number, at least ``minimum`` when one is given."""
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {shown(value)}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {number}")
    return number


def parse_seconds(name: str, value: str, *, positive: bool = False) -> float:
    """A number of seconds (``"60"``, ``"2.5"``): finite, not negative (positive when asked)."""
    try:
        number = float(value.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {shown(value)}") from None
    if number != number or number in (float("inf"), float("-inf")) or number < 0 or (positive and number == 0):
        raise ConfigError(f"{name} must be a {'positive' if positive else 'non-negative'} number of seconds, not {shown(value)}")
    return number


def parse_list(name: str, value: str) -> list[str]:
    """A comma-separated list (blanks dropped), or a Python list literal of strings.

    ``"['a','b']"`` is Enterprise Gateway's ``EG_KERNEL_WHITELIST`` format in the
    seed's deployment: it is read with :func:`ast.literal_eval` and must be a
    list (or tuple) of strings; a value starting with ``[`` that is not one is a
    :class:`ConfigError`.
    """
    text = value.strip()
    if text.startswith(("[", "(")):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ConfigError(f"{name} must be a list of names like ['a','b'] or a,b, not {shown(value)}") from None
        if not isinstance(parsed, (list, tuple)) or not all(isinstance(item, str) for item in parsed):
            raise ConfigError(f"{name} must be a list of strings, not {shown(value)}")
        items: Iterable[str] = parsed
    else:
        items = text.split(",")
    return [item.strip() for item in items if item.strip()]


def env(name: str) -> str | None:
    """The variable's raw value, ``None`` when unset."""
    return os.environ.get(name)


def bool_env(name: str, fallback: bool) -> bool:
    """The variable as a boolean; ``fallback`` when unset or blank."""
    value = env(name)
    return fallback if value is None or not value.strip() else parse_bool(name, value)


def int_env(name: str, fallback: int, *, minimum: int | None = None) -> int:
    """The variable as a whole number (at least ``minimum``); ``fallback`` when unset or blank."""
    value = env(name)
    return fallback if value is None or not value.strip() else parse_int(name, value, minimum=minimum)


def seconds_env(name: str, fallback: float, *, positive: bool = False) -> float:
    """The variable as a number of seconds; ``fallback`` when unset or blank."""
    value = env(name)
    return fallback if value is None or not value.strip() else parse_seconds(name, value, positive=positive)


def ids_env(name: str) -> list[int]:
    """The variable as a list of user or group ids; ``[0]`` (root) when unset, none when set blank."""
    value = env(name)
    if value is None:
        return [0]
    return [parse_int(name, item, minimum=0) for item in parse_list(name, value)]
