"""Who is calling the simulated cluster: users, groups and bearer tokens.

The simulated API server authenticates a bearer token to a :class:`UserInfo`
through a :class:`TokenRegistry`; the in-memory cluster authorizes every call
for the :class:`UserInfo` it was opened with.  Names follow the real server's
conventions (``k8s.io/apiserver/pkg/authentication/serviceaccount``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

SYSTEM_MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
SERVICE_ACCOUNTS = "system:serviceaccounts"
NODES = "system:nodes"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated caller: a user name and the groups it belongs to."""

    name: str
    groups: tuple[str, ...] = (AUTHENTICATED,)
    uid: str = ""

    @property
    def service_account(self) -> tuple[str, str] | None:
        """``(namespace, name)`` when this user is a service account, else ``None``."""
        parts = self.name.split(":")
        if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
            return parts[2], parts[3]
        return None


ADMIN = UserInfo("kubernetes-admin", (SYSTEM_MASTERS, AUTHENTICATED))
"""The cluster administrator, as kubeadm and kind name it."""


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    """The identity a token of service account ``namespace/name`` authenticates as."""
    return UserInfo(
        f"system:serviceaccount:{namespace}:{name}",
        (SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{namespace}", AUTHENTICATED),
        uid,
    )


def node_user(node_name: str) -> UserInfo:
    """The identity a node agent (kubelet) acts as."""
    return UserInfo(f"system:node:{node_name}", (NODES, AUTHENTICATED))


@dataclass
class _Token:
    user: UserInfo
    expires_at: float | None
    bound_to: tuple[str, str, str] | None  # (namespace, service account name, uid)


class TokenRegistry:
    """Bearer tokens and who they stand for.

    Static tokens (the admin's) never expire; service-account tokens issued by
    the TokenRequest API expire and stop working once their service account is
    deleted, as bound tokens do on a real cluster.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._tokens: dict[str, _Token] = {}
        self._clock = clock

    def add_static(self, token: str, user: UserInfo) -> None:
        """Register a token for ``user`` (used for the admin's kubeconfig)."""
        self._tokens[token] = _Token(user, None, None)

    def issue(self, namespace: str, name: str, uid: str, expiration_seconds: int) -> tuple[str, float]:
        """Issue a token for service account ``namespace/name``; return it and its expiry (epoch seconds)."""
        token = secrets.token_urlsafe(32)
        expires_at = self._clock() + expiration_seconds
        self._tokens[token] = _Token(service_account_user(namespace, name, uid), expires_at, (namespace, name, uid))
        return token, expires_at

    def authenticate(self, token: str, account_exists: Callable[[str, str, str], bool]) -> UserInfo | None:
        """The user behind ``token``, or ``None`` when it is unknown, expired, or its account is gone.

        ``account_exists(namespace, name, uid)`` tells whether the service account a bound token
        was issued for still exists with the same uid.
        """
        entry = self._tokens.get(token)
        if entry is None:
            return None
        if entry.expires_at is not None and self._clock() >= entry.expires_at:
            return None
        if entry.bound_to is not None and not account_exists(*entry.bound_to):
            return None
        return entry.user
