"""Where the adapter's requests go and how they are authenticated, read from a client configuration.

The ``kubernetes`` client reads kubeconfig and in-cluster credentials into a ``Configuration``
(:mod:`.credentials`); an :class:`Endpoint` takes from it what a request needs: the server's
address, the TLS context (its CA, client certificate, server name), an HTTP proxy, and the
``Authorization`` header.  Building one blocks (it reads certificate files, and a token may come
from an exec plugin or a token file): :class:`~gateway.cluster.kubernetes.credentials.Credentials`
does it at startup and in a worker thread when the credentials change, never on the event loop.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

from kubernetes.client import Configuration
from kubernetes.client.rest import is_socks_proxy_url, should_bypass_proxies

from .connection import Address, Proxy

JSON = "application/json"


class Endpoint:
    """The API server as one set of credentials reaches it (immutable but for :attr:`authorization`).

    Made by :class:`~gateway.cluster.kubernetes.credentials.Credentials`; read by
    :class:`~gateway.cluster.kubernetes.transport.Transport` for every request.
    """

    def __init__(self, configuration: Configuration) -> None:
        url = urlsplit(str(configuration.host))
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ValueError(f"the API server's URL is not http(s)://host[:port]: {configuration.host!r}")
        tls = _tls_context(configuration) if url.scheme == "https" else None
        self.address = Address(
            host=url.hostname,
            port=url.port or (443 if tls else 80),
            tls=tls,
            server_hostname=_server_hostname(configuration, url.hostname) if tls else None,
            proxy=_proxy(configuration),
        )
        self.host_header = url.netloc
        self.base = url.path.rstrip("/")
        self.absolute = self.address.proxy is not None and tls is None
        """Whether request targets are absolute URLs (plain HTTP through a proxy)."""
        self.url = f"{url.scheme}://{url.netloc}{self.base}"
        self._configuration = configuration
        self.authorization: str | None = None
        self.authorize()

    def target(self, path_and_query: str) -> str:
        """The request target for ``path_and_query`` (``/api/v1/...?...``)."""
        return (self.url if self.absolute else self.base) + path_and_query

    def headers(self) -> dict[str, str]:
        """The headers every request carries (a fresh dict: the caller adds its own)."""
        headers = {"User-Agent": "kernelgate", "Accept": JSON}
        if self.authorization:
            headers["Authorization"] = self.authorization
        return headers

    def authorize(self) -> bool:
        """Read the bearer token again (blocking: a token file, an exec plugin); whether it changed.

        The configuration's refresh hook renews a token that expired (in-cluster every minute,
        exec plugins at their expiry); a client certificate needs no header.
        """
        token = self._configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        changed = token != self.authorization
        self.authorization = token or None
        return changed


def _tls_context(configuration: Configuration) -> ssl.SSLContext:
    """The TLS context of ``configuration``: its CA (or the system's), client certificate and checks."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert, cadata=configuration.ca_cert_data)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    if not configuration.verify_ssl:  # kubeconfig's insecure-skip-tls-verify
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif configuration.assert_hostname is False:
        context.check_hostname = False
    return context


def _server_hostname(configuration: Configuration, host: str) -> str:
    """The name the server's certificate must hold (kubeconfig's ``tls-server-name``, else the URL's host)."""
    if configuration.tls_server_name:
        return str(configuration.tls_server_name)
    if isinstance(configuration.assert_hostname, str) and configuration.assert_hostname:
        return configuration.assert_hostname
    return host


def _proxy(configuration: Configuration) -> Proxy | None:
    """The HTTP proxy requests go through (kubeconfig's ``proxy-url``, else ``HTTPS_PROXY``, unless ``NO_PROXY``)."""
    proxy = configuration.proxy
    if not proxy or should_bypass_proxies(configuration.host, configuration.no_proxy or ""):
        return None
    if is_socks_proxy_url(proxy):
        raise ValueError(f"SOCKS proxies are not supported; use an HTTP proxy (CONNECT): {proxy!r}")
    url = urlsplit(proxy)
    if url.scheme != "http" or not url.hostname:
        raise ValueError(f"the proxy's URL is not http://host[:port]: {proxy!r}")
    headers = tuple((str(k), str(v)) for k, v in (configuration.proxy_headers or {}).items())
    return Proxy(url.hostname, url.port or 80, headers)
