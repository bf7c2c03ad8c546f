"""The kernelspecs this gateway offers, filtered by the allow-list and by user.

A kernelspec is a folder ``<name>/kernel.json`` (plus logos and
``scripts/kernel-pod.yaml``) under one of the configured paths; the first path
holding a name wins, as in Jupyter.  Only Kubernetes kernelspecs are offered
(``metadata.process_proxy.class_name`` ending in ``KubernetesProcessProxy``):
every kernel this gateway runs is a pod, so a local ``python3`` spec found on
the Jupyter path could not be launched.

Filters, as Enterprise Gateway applies them:

* ``EG_ALLOWED_KERNELS`` / ``EG_KERNEL_WHITELIST``: names outside the list do
  not exist for clients (404);
* users: ``KERNEL_USERNAME`` in the global ``unauthorized_users`` or the
  kernelspec's ``metadata.process_proxy.config.unauthorized_users`` (their
  union) is refused; when the kernelspec has ``authorized_users`` the user must
  be in it, else when the global ``authorized_users`` is not empty the user
  must be in that (403).  Lists in ``kernel.json`` may be JSON lists or
  comma-separated strings.

On a cluster that cannot run some kernelspecs' images (the embedded simulated
cluster without R, almond or Spark on this machine), those are not listed, and a
start of one is refused with the reason (404), rather than failing in its pod.

Kernelspec files are read on every call (a few small files): an operator's
change shows up without a restart.  Called by the HTTP layer (listing, logos)
and by the kernel service, which reads the kernelspec of each start once and
off the event loop (:meth:`KernelSpecs.choose`).  Given a
:class:`~gateway.filewatch.FolderWatch`, a start's read is kept until a file
under the folders it came from changes, which shows at the next start just the same.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway.filewatch import FolderWatch, WatchedReads
from gateway.provisioner.spec import DEFAULT_KERNEL_IMAGE, KernelSpecInfo, is_kubernetes_spec, kernel_spec_info

from .errors import KernelError, UnknownKernelSpec, UserNotAuthorized, shown

log = logging.getLogger("gateway.kernels.specs")

SPEC_NAME = re.compile(r"[a-z0-9._-]+\Z", re.IGNORECASE)
"""Jupyter's rule for kernelspec names (``jupyter_client.kernelspec._is_valid_kernel_name``)."""
PREFERRED_DEFAULT = "python_kubernetes"
RESOURCE_PREFIXES = ("logo-",)
RESOURCE_FILES = ("kernel.js", "kernel.css")


@dataclasses.dataclass(frozen=True)
class ChosenSpec:
    """The kernelspec a start asked for, as read once by :meth:`KernelSpecs.choose`."""

    info: KernelSpecInfo
    """What the provisioner needs to launch it."""
    authorized_users: frozenset[str]
    """Who may start it; empty: anyone not refused."""
    unauthorized_users: frozenset[str]
    """Who may not, whatever :attr:`authorized_users` says."""

    @property
    def name(self) -> str:
        return self.info.name

    def check_user(self, user: str) -> None:
        """Raise :class:`UserNotAuthorized` (403) unless ``user`` may start it (called before the launch)."""
        if not _allows(self.authorized_users, self.unauthorized_users, user):
            raise _not_authorized(self.name, user)


class KernelSpecs:
    """The kernelspecs found under ``paths``, as clients may see and use them."""

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        allowed: frozenset[str] | None,
        default_name: str | None,
        authorized_users: frozenset[str],
        unauthorized_users: frozenset[str],
        default_image: str = DEFAULT_KERNEL_IMAGE,
        unrunnable: Callable[[str], str] | None = None,
        watch: FolderWatch | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.unrunnable = unrunnable
        """Why the cluster cannot run a kernel image ("" when it can); ``None``: it runs every image."""
        self.allowed = allowed
        self._default_name = default_name
        self.authorized_users = authorized_users
        self.unauthorized_users = unauthorized_users
        self.default_image = default_image
        self._chosen: WatchedReads[str | None, ChosenSpec] = WatchedReads(watch)

    @property
    def default_name(self) -> str:
        """The configured default if offered, else ``python_kubernetes`` if offered, else the first name ("" if none)."""
        for candidate in (self._default_name, PREFERRED_DEFAULT):
            if candidate and self._folder(candidate) is not None:
                return candidate
        return min(self._folders(), default="")

    def all(self, user: str | None = None, *, base_url: str = "/") -> dict[str, dict[str, Any]]:
        """Every offered kernelspec model by name; with ``user``, only those the user may start."""
        models = {}
        for name, folder in sorted(self._folders().items()):
            kernel_json = self._kernel_json(name, folder)
            if kernel_json is None:
                continue
            if user is not None and not self._user_allowed(kernel_json, user):
                continue
            if self._why_not_runnable(kernel_json):
                continue
            models[name] = self._model(name, folder, kernel_json, base_url)
        return models

    def not_runnable(self) -> dict[str, str]:
        """The kernelspecs left out of :meth:`all` because the cluster cannot run their image, with why (read from
        disk: the composition root asks once, off the event loop, to log them)."""
        hidden = {}
        for name, folder in sorted(self._folders().items()):
            kernel_json = self._kernel_json(name, folder)
            why = self._why_not_runnable(kernel_json) if kernel_json is not None else ""
            if why:
                hidden[name] = why
        return hidden

    def get(self, name: str, user: str | None = None, *, base_url: str = "/") -> dict[str, Any]:
        """One kernelspec's model: :class:`UnknownKernelSpec` (404), or :class:`UserNotAuthorized` (403) for ``user``."""
        folder, kernel_json = self._find(name)
        if user is not None and not self._user_allowed(kernel_json, user):
            raise _not_authorized(name, user)
        self._check_runnable(name, kernel_json)
        return self._model(name, folder, kernel_json, base_url)

    async def choose(self, name: str | None) -> ChosenSpec:
        """The kernelspec ``name`` (the default when ``None``) for a kernel start, read off the event loop.

        Called by the kernel service once per start, before anything is created.  Raises
        :class:`UnknownKernelSpec` (404) when it is not offered (or none is), :class:`KernelError`
        when its ``kernel.json`` is malformed.  What it read is kept while no file under the paths'
        folders of that name (nor the paths themselves) changes: a new folder of that name on an
        earlier path, an edited ``kernel.json`` or a removed folder shows at the next start.
        """
        if name is None:  # kept when the default is the one configured or python_kubernetes, not the first found
            named = [n for n in (self._default_name, PREFERRED_DEFAULT) if n and self._folder_name(n) is not None]
            folders = [folder for base in self.paths for folder in (base, *(base / n for n in named))]
            return await self._chosen.read(None, folders, functools.partial(self._choose, None),
                                           keep=lambda chosen: chosen.name in named)
        if self._folder_name(name) is None:
            return await asyncio.to_thread(self._choose, name)
        folders = [folder for base in self.paths for folder in (base, base / name)]
        return await self._chosen.read(name, folders, functools.partial(self._choose, name))

    def _choose(self, name: str | None) -> ChosenSpec:
        name = name or self.default_name
        if not name:
            raise UnknownKernelSpec("No kernelspec is available.")
        folder, kernel_json = self._find(name)
        self._check_runnable(name, kernel_json)
        try:
            info = kernel_spec_info(name, folder, kernel_json)
        except ValueError as error:
            raise KernelError(f"Kernelspec {name!r} is malformed: {error}") from None
        config = _proxy_config(kernel_json)
        if not config.get("image_name"):
            info = dataclasses.replace(info, image=self.default_image)
        authorized, unauthorized = self._users(config)
        return ChosenSpec(info, authorized_users=authorized, unauthorized_users=unauthorized)

    def resource_path(self, name: str, resource: str) -> Path:
        """The file ``resource`` of kernelspec ``name``, refusing any path leaving its folder (404)."""
        folder, _ = self._find(name)
        parts = resource.replace("\\", "/").split("/")
        if not resource or any(part in ("", ".", "..") for part in parts) or "\0" in resource:
            raise KernelError(f"No resource {shown(resource)} in kernelspec {shown(name)}.", status=404)
        root = folder.resolve()
        path = (root / Path(*parts)).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise KernelError(f"No resource {shown(resource)} in kernelspec {shown(name)}.", status=404)
        return path

    # -- reading --

    def _find(self, name: str) -> tuple[Path, dict[str, Any]]:
        """Kernelspec ``name``'s folder and ``kernel.json`` (:class:`UnknownKernelSpec` if not offered)."""
        folder = self._folder(name)
        kernel_json = self._kernel_json(name, folder) if folder is not None else None
        if folder is None or kernel_json is None:
            raise UnknownKernelSpec(f"Kernelspec {shown(str(name))} not found.")
        return folder, kernel_json

    def _folder_name(self, name: object) -> str | None:
        """``name`` if it may name an offered kernelspec's folder (Jupyter's rule, the allow-list), else ``None``."""
        if not isinstance(name, str) or not SPEC_NAME.match(name) or name in (".", ".."):
            return None
        if self.allowed is not None and name not in self.allowed:
            return None
        return name

    def _folder(self, name: str) -> Path | None:
        """Offered kernelspec ``name``'s folder (``None`` if not offered), as :meth:`_folders` would map it,
        without listing every path: what a start, one model or one resource needs."""
        if self._folder_name(name) is None:
            return None
        for base in self.paths:
            folder = base / name
            if (folder / "kernel.json").is_file():
                return folder
        return None

    def _folders(self) -> dict[str, Path]:
        """Offered names -> their folder: first path wins, allow-list applied."""
        found: dict[str, Path] = {}
        for base in self.paths:
            if not base.is_dir():
                continue
            for folder in sorted(base.iterdir()):
                name = folder.name
                if name in found or not SPEC_NAME.match(name) or not (folder / "kernel.json").is_file():
                    continue
                if self.allowed is not None and name not in self.allowed:
                    continue
                found[name] = folder
        return found

    def _kernel_json(self, name: str, folder: Path) -> dict[str, Any] | None:
        try:
            kernel_json = json.loads((folder / "kernel.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            log.warning("Kernelspec %s skipped: its kernel.json cannot be read (%s)", name, error)
            return None
        if not isinstance(kernel_json, dict):
            log.warning("Kernelspec %s skipped: its kernel.json is not an object", name)
            return None
        if not is_kubernetes_spec(kernel_json):
            log.debug("Kernelspec %s skipped: not a Kubernetes kernelspec", name)
            return None
        return kernel_json

    def _model(self, name: str, folder: Path, kernel_json: dict[str, Any], base_url: str) -> dict[str, Any]:
        """A kernelspec model as Jupyter Server serves it: name, spec (kernel.json) and resource URLs."""
        prefix = "/" + "/".join(p for p in (base_url.strip("/"), "kernelspecs", name) if p)
        resources = {}
        for path in sorted(folder.iterdir()):
            if not path.is_file():
                continue
            if path.name.startswith(RESOURCE_PREFIXES):
                resources[path.stem] = f"{prefix}/{path.name}"
            elif path.name in RESOURCE_FILES:
                resources[path.name] = f"{prefix}/{path.name}"
        return {"name": name, "spec": kernel_json, "resources": resources}

    def _why_not_runnable(self, kernel_json: Mapping[str, Any]) -> str:
        if self.unrunnable is None:
            return ""
        return self.unrunnable(str(_proxy_config(kernel_json).get("image_name") or self.default_image))

    def _check_runnable(self, name: str, kernel_json: Mapping[str, Any]) -> None:
        why = self._why_not_runnable(kernel_json)
        if why:
            raise UnknownKernelSpec(f"Kernelspec {shown(name)} cannot run on this cluster: {why}.")

    def _user_allowed(self, kernel_json: Mapping[str, Any], user: str) -> bool:
        return _allows(*self._users(_proxy_config(kernel_json)), user)

    def _users(self, config: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
        """``(authorized, unauthorized)`` for a kernelspec: its own lists laid over the global ones."""
        unauthorized = self.unauthorized_users | _user_list(config.get("unauthorized_users"))
        authorized = _user_list(config.get("authorized_users")) or self.authorized_users
        return authorized, unauthorized


def _not_authorized(name: str, user: str) -> UserNotAuthorized:
    return UserNotAuthorized(
        f"User {shown(user)} is not authorized to start kernel {shown(name)}. "
        "Ensure KERNEL_USERNAME is set to an appropriate value and retry the request."
    )


def _allows(authorized: frozenset[str], unauthorized: frozenset[str], user: str) -> bool:
    return user not in unauthorized and (not authorized or user in authorized)


def _proxy_config(kernel_json: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = kernel_json.get("metadata")
    proxy = metadata.get("process_proxy") if isinstance(metadata, Mapping) else None
    config = proxy.get("config") if isinstance(proxy, Mapping) else None
    return config if isinstance(config, Mapping) else {}


def _user_list(value: Any) -> frozenset[str]:
    """A kernel.json user list: a JSON list of names or a comma-separated string."""
    items: Iterable[Any]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list):
        items = value
    else:
        return frozenset()
    return frozenset(str(item).strip() for item in items if str(item).strip())
