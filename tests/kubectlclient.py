"""The kubectl on PATH: its version, read once, and what older releases lack.

The kubectl tests run with whatever kubectl the machine has: a current one, or
Debian's ``kubernetes-client`` package (kubectl 1.20), which ``.ci/run`` installs
where kubectl is missing.  A real 1.32 API server serves both, and so does the
simulated one; what differs is the client.  Tests that need a newer command
either skip on older kubectl (:func:`needs`) or reach the same API another way
(:func:`token_command`, :func:`whoami_command`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CREATE_TOKEN = (1, 24)
"""``kubectl create token`` (a TokenRequest) appeared in kubectl 1.24."""
WAIT_FOR_JSONPATH = (1, 23)
"""``kubectl wait --for=jsonpath=...`` appeared in kubectl 1.23."""
KUSTOMIZE_COMPONENTS = (1, 21)
"""kubectl 1.21 embeds kustomize v4; 1.20's kustomize v2 rejects ``components`` (kustomize v3.7)."""
PROTOBUF_CREATES = (1, 32)
"""kubectl 1.32 sends ``kubectl create <kind>`` bodies as protobuf; earlier releases send JSON."""
AUTH_WHOAMI = (1, 28)
"""``kubectl auth whoami`` asks authentication.k8s.io/v1 from kubectl 1.28 on; 1.27's asks v1beta1,
which a 1.32 server does not serve by default (``betaAPIGroupVersionsDisabledByDefault`` in
kubernetes pkg/controlplane/instance.go), so it fails there as on the simulated server."""


@functools.cache
def client_version() -> tuple[int, int] | None:
    """(major, minor) of the kubectl on PATH, or ``None`` when there is none."""
    if shutil.which("kubectl") is None:
        return None
    done = subprocess.run(["kubectl", "version", "--client", "-o", "json"],
                          capture_output=True, text=True, timeout=30, check=True)
    info = json.loads(done.stdout)["clientVersion"]
    return int(info["major"]), int(info["minor"].rstrip("+"))


def has(feature: tuple[int, int]) -> bool:
    """Whether the kubectl on PATH is at least ``feature`` (one of the constants above)."""
    version = client_version()
    return version is not None and version >= feature


def needs(feature: tuple[int, int], what: str) -> pytest.MarkDecorator:
    """Skip a test on a kubectl older than ``feature``; ``what`` names the missing command."""
    version = client_version()
    shown = "none" if version is None else f"{version[0]}.{version[1]}"
    return pytest.mark.skipif(not has(feature),
                              reason=f"{what} needs kubectl >= {feature[0]}.{feature[1]} (this one is {shown})")


def token_command(account: str, namespace: str, seconds: int | None = None) -> tuple[list[str], str | None]:
    """kubectl arguments and stdin that ask the TokenRequest API for ``account``'s token.

    ``kubectl create token`` where the client has it; else the same request posted
    with ``create --raw``, whose output :func:`read_token` turns into the token.
    """
    if has(CREATE_TOKEN):
        args = ["create", "token", account, "-n", namespace]
        return args + ([f"--duration={seconds}s"] if seconds else []), None
    request: dict = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    if seconds:
        request["spec"]["expirationSeconds"] = seconds
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"
    return ["create", "--raw", path, "-f", "-"], json.dumps(request)


def read_token(out: str) -> str:
    """The token in the output of :func:`token_command`'s command."""
    text = out.strip()
    return json.loads(text)["status"]["token"] if text.startswith("{") else text


def whoami_command(*flags: str) -> tuple[list[str], str | None]:
    """kubectl arguments and stdin that create a SelfSubjectReview (``flags``: ``-o``, ``--as``, ``--context``).

    ``kubectl auth whoami`` where the client has it; else ``kubectl create -f -`` of
    the review, which prints the same object.
    """
    if has(AUTH_WHOAMI):
        return ["auth", "whoami", *flags], None
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    return ["create", "-f", "-", *flags], json.dumps(review)


KUBECTL_TIMEOUT = 60.0
"""Seconds one kubectl command may take."""


class Kubectl:
    """The real kubectl as a subprocess (asyncio, bounded by ``KUBECTL_TIMEOUT``) with one kubeconfig.

    Called by the kubectl tests and the deployed-gateway harness: ``await kubectl("get", "pods")`` returns
    ``(returncode, stdout, stderr)`` and, unless ``check=False``, asserts the command succeeded.
    """

    def __init__(self, kubeconfig: Path, cache_dir: Path) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECACHEDIR": str(cache_dir)}

    async def __call__(self, *args: str, stdin: str | None = None, check: bool = True) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            "kubectl", *args, env=self.env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), KUBECTL_TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        result = (proc.returncode or 0, out.decode(), err.decode())
        if check:
            assert result[0] == 0, f"kubectl {' '.join(args)} failed: {result}"
        return result

    async def token(self, account: str, namespace: str) -> str:
        """A token of service account ``namespace/account`` from the TokenRequest API."""
        args, stdin = token_command(account, namespace)
        _, out, _ = await self(*args, stdin=stdin)
        return read_token(out)
