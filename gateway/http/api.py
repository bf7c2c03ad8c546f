"""``GET /api``: the API's version, and the gateway's."""

from __future__ import annotations

from importlib import metadata

from .errors import ApiHandler

SERVER_API_VERSION = "2.14.0"
"""The Jupyter Server REST API this gateway speaks (reported unless jupyter_server is installed here)."""


def _version(distribution: str, fallback: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return fallback


# Read once, as the module is imported at start-up: finding a distribution's version reads the
# metadata files of every folder on sys.path, which no request may do on the event loop.
VERSIONS = {
    "version": _version("jupyter_server", SERVER_API_VERSION),
    "gateway_version": _version("kernelgate", "0"),
}


class VersionHandler(ApiHandler):
    """``{"version": <Jupyter Server API version>, "gateway_version": <kernelgate's>}`` as EG answers."""

    def get(self) -> None:
        self.write_json(VERSIONS)
