"""Kubeconfig files for the simulated API server.

Written by :class:`fakes.serve.SimulatedCluster` (and so by ``kernelgate cluster``)
for kubectl, the ``kubernetes`` client and the real adapter.  The layout is the
one ``kubectl config view --raw`` prints for a kind cluster: one cluster with
inline CA data, one context per user, bearer tokens inline.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

CLUSTER_NAME = "kernelgate"
ADMIN_USER = "kernelgate-admin"


def build(
    server: str,
    ca_pem: bytes,
    admin_token: str,
    *,
    users: Mapping[str, str] | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """The kubeconfig document: the admin context is current; each of ``users``
    (name -> bearer token) gets a context named after it."""
    all_users = {ADMIN_USER: admin_token, **(users or {})}
    contexts = []
    for user in all_users:
        context: dict[str, Any] = {"cluster": CLUSTER_NAME, "user": user}
        if namespace:
            context["namespace"] = namespace
        contexts.append({"name": _context_name(user), "context": context})
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}} for user, token in all_users.items()],
        "contexts": contexts,
        "current-context": _context_name(ADMIN_USER),
    }


def _context_name(user: str) -> str:
    return CLUSTER_NAME if user == ADMIN_USER else f"{CLUSTER_NAME}-{user}"


def context_for(user: str) -> str:
    """The context name :func:`build` gives ``user`` (for ``kubectl --context``)."""
    return _context_name(user)


def write(path: str | Path, server: str, ca_pem: bytes, admin_token: str, **kwargs: Any) -> Path:
    """Write the kubeconfig :func:`build` returns to ``path``, readable by its owner only
    (it holds bearer tokens).  Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(build(server, ca_pem, admin_token, **kwargs), sort_keys=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path
