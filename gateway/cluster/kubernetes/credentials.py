"""The adapter's credentials: where they come from, and reading them again when they change on disk.

On a real cluster credentials change under a running gateway: the kubelet rewrites a pod's
projected service-account token well before it expires (and the old one stops working at its
expiry), an administrator rotates the cluster's CA or a kubeconfig's token or client certificate.
A :class:`CredentialSource` names the files the credentials are read from (a kubeconfig and the
files it points to, or the pod's service-account token and CA); :class:`Credentials` holds the
:class:`~gateway.cluster.kubernetes.endpoint.Endpoint` built from them and builds a new one when
their content changed.

:meth:`Credentials.refresh` blocks (it reads files): the transport runs it in a worker thread,
never on the event loop, once ``refresh_interval`` has passed, and at once when the API server
rejects the token (401) or the TLS handshake fails.  Requests already sent finish with the
endpoint they started with.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml
from kubernetes import config as kube_config
from kubernetes.client import Configuration
from kubernetes.config.incluster_config import SERVICE_CERT_FILENAME, SERVICE_TOKEN_FILENAME, InClusterConfigLoader

from .endpoint import Endpoint

log = logging.getLogger(__name__)

DEFAULT_REFRESH_INTERVAL = 60.0
"""Seconds between checks of the credential files (client-go re-reads a projected token every minute)."""


class CredentialSource(Protocol):
    """Where credentials are read from; both methods block (they read files)."""

    def fingerprint(self) -> bytes:
        """A digest of every file the credentials are read from: it changes when any of them does."""
        ...

    def configuration(self) -> Configuration:
        """A client configuration (server, CA, token or client certificate) read from the files now."""
        ...


class KubeconfigSource:
    """Kubeconfig files (``path``, or ``$KUBECONFIG``, or ``~/.kube/config``; several joined by ``os.pathsep``
    are merged as kubectl merges them) and the token, certificate and CA files their ``context`` (default: the
    current one) names."""

    def __init__(self, path: str | None = None, context: str | None = None) -> None:
        self.path = path or kube_config.KUBE_CONFIG_DEFAULT_LOCATION
        self.files = [os.path.expanduser(p) for p in self.path.split(os.pathsep) if p]
        self.context = context

    def fingerprint(self) -> bytes:
        texts = [_read(f) for f in self.files]
        return _digest([*texts, *(_read(p) for p in self._referenced_files(texts))])

    def configuration(self) -> Configuration:
        configuration = Configuration()
        kube_config.load_kube_config(config_file=self.path, context=self.context,
                                     client_configuration=configuration, persist_config=False)
        return configuration

    def _referenced_files(self, texts: list[bytes]) -> list[str]:
        """The files the context's user and cluster read: ``tokenFile``, ``client-certificate``,
        ``client-key``, ``certificate-authority`` (relative paths are relative to the file naming them)."""
        entries: dict[tuple[str, Any], tuple[dict[str, Any], Path]] = {}
        current = None
        for file, text in zip(self.files, texts, strict=True):
            try:
                doc = yaml.safe_load(text)
            except yaml.YAMLError:
                continue
            if not isinstance(doc, dict):
                continue
            current = current or doc.get("current-context")
            for section in ("contexts", "users", "clusters"):
                for entry in doc.get(section) or []:
                    if isinstance(entry, dict):  # the first file naming an entry wins, as in kubectl
                        entries.setdefault((section, entry.get("name")), (entry, Path(file).parent))
        context = _field(entries.get(("contexts", self.context or current)), "context")[0]
        user, user_dir = _field(entries.get(("users", context.get("user"))), "user")
        cluster, cluster_dir = _field(entries.get(("clusters", context.get("cluster"))), "cluster")
        named = [(user_dir, user.get(k)) for k in ("tokenFile", "client-certificate", "client-key")]
        named.append((cluster_dir, cluster.get("certificate-authority")))
        return [str(base / f) for base, f in named if isinstance(f, str) and f]


class InClusterSource:
    """The pod's service account: its token and CA files, and the API server's address from the environment."""

    def __init__(self, token_path: str = SERVICE_TOKEN_FILENAME, ca_path: str = SERVICE_CERT_FILENAME,
                 environ: Mapping[str, str] | None = None) -> None:
        self.token_path = token_path
        self.ca_path = ca_path
        self.environ = os.environ if environ is None else environ

    def fingerprint(self) -> bytes:
        return _digest([_read(self.token_path), _read(self.ca_path)])

    def configuration(self) -> Configuration:
        configuration = Configuration()
        InClusterConfigLoader(token_filename=self.token_path, cert_filename=self.ca_path,
                              environ=self.environ).load_and_set(configuration)
        return configuration


class Credentials:
    """The :class:`~gateway.cluster.kubernetes.endpoint.Endpoint` requests are sent to, rebuilt from ``source``
    when its files change.

    Safe to use from any thread; :attr:`endpoint` is the current one.  Without a ``source`` the
    endpoint never changes (a configuration the caller made), but its token is still renewed.
    """

    def __init__(self, endpoint: Endpoint, source: CredentialSource | None = None, *,
                 refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._endpoint = endpoint
        self._source = source
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._checked = clock()
        self._fingerprint = source.fingerprint() if source is not None else b""
        self.changes = 0
        """How many times the credentials were re-read with a different content."""

    @classmethod
    def load(cls, source: CredentialSource, *, refresh_interval: float = DEFAULT_REFRESH_INTERVAL) -> Credentials:
        """Credentials read from ``source`` now (blocking: call at startup, off the event loop)."""
        return cls(Endpoint(source.configuration()), source, refresh_interval=refresh_interval)

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    @property
    def due(self) -> bool:
        """Whether ``refresh_interval`` has passed since the last check (cheap: the transport asks before each request)."""
        return self._clock() - self._checked >= self.refresh_interval

    def refresh(self, *, now: bool = False) -> bool:
        """Re-read the credentials, if ``refresh_interval`` has passed or ``now``; whether they changed.

        Blocking: the transport calls it in a worker thread.  A new endpoint when the files
        changed, else the same endpoint's token read again (it may come from an exec plugin or
        a token file).  A failure to read them (a file being rewritten) keeps the current
        endpoint; the next check tries again.
        """
        if not now and not self.due:
            return False
        with self._lock:
            if not now and not self.due:
                return False  # another thread just checked
            self._checked = self._clock()
            try:
                fingerprint = self._source.fingerprint() if self._source is not None else b""
                if fingerprint == self._fingerprint:
                    return self._endpoint.authorize()
                assert self._source is not None
                fresh = Endpoint(self._source.configuration())
            except Exception as exc:  # unreadable now (being rewritten?): keep what works, try at the next check
                log.warning("the changed credentials could not be read: %s; keeping the current ones", exc)
                return False
            self._endpoint, self._fingerprint = fresh, fingerprint
            self.changes += 1
        log.info("the credentials for the Kubernetes API changed on disk; using the new ones")
        return True


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        return f"unreadable: {exc.errno}".encode()


def _digest(parts: Iterable[bytes]) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def _field(entry: tuple[dict[str, Any], Path] | None, key: str) -> tuple[dict[str, Any], Path]:
    """``entry[key]`` of a kubeconfig entry and the folder of the file holding it (empty when absent)."""
    if entry is None or not isinstance(entry[0].get(key), dict):
        return {}, Path(".")
    return entry[0][key], entry[1]
