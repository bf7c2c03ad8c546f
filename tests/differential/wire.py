"""Raw HTTP to an API server, as the differential test sends it: no client library between.

:class:`Wire` reads an admin kubeconfig (a bearer token, or a client
certificate as the real control plane's admin has) and sends requests with
:mod:`httpx`.  Every request names the same field manager and user agent, so
``managedFields`` entries written by the two servers can be compared.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

USER_AGENT = "kernelgate-differential/1.0"
"""Both servers record ``kernelgate-differential`` as the manager of an update that names none."""


@dataclass
class Answer:
    """A response: status code and decoded JSON body (``None`` when the body is not JSON)."""

    status: int
    body: Any
    text: str


class Wire:
    """Synchronous HTTPS to one API server with the credentials of a kubeconfig's current user."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        self.url = cluster["server"].rstrip("/")
        context = ssl.create_default_context()
        if "certificate-authority-data" in cluster:
            context.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        else:
            context.load_verify_locations(cafile=cluster["certificate-authority"])
        headers = {"User-Agent": USER_AGENT}
        if user.get("token"):
            headers["Authorization"] = f"Bearer {user['token']}"
        if user.get("client-certificate-data"):
            self._pem = tempfile.TemporaryDirectory(prefix="kernelgate-wire-")
            cert, key = Path(self._pem.name, "client.crt"), Path(self._pem.name, "client.key")
            cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
            key.write_bytes(base64.b64decode(user["client-key-data"]))
            context.load_cert_chain(str(cert), str(key))
        self._client = httpx.Client(base_url=self.url, verify=context, headers=headers, timeout=30.0)

    def send(self, method: str, path: str, *, body: Any = None, content_type: str = "application/json",
             params: dict[str, str] | None = None) -> Answer:
        """One request; ``body`` is JSON-encoded unless it is already ``bytes``/``str``."""
        content: bytes | None = None
        if body is not None:
            content = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str)
                                                           else json.dumps(body).encode())
        headers = {"Content-Type": content_type} if content is not None else {}
        answer = self._client.request(method, path, content=content, headers=headers, params=params)
        try:
            decoded = answer.json()
        except ValueError:
            decoded = None
        return Answer(answer.status_code, decoded, answer.text)

    def stream(self, method: str, path: str, *, params: dict[str, str] | None = None) -> Any:
        """A streamed request (a watch), as a context manager over the response."""
        return self._client.stream(method, path, params=params, timeout=httpx.Timeout(30.0, read=10.0))

    def close(self) -> None:
        self._client.close()
