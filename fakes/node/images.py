"""How an image "runs" on the simulated node: image references mapped to local programs.

The node agent (``fakes.node.kubelet``) has no container runtime.  Instead an
:class:`ImageMap` says, for an image reference, what a container of that image
would run: its entrypoint, default command, environment and working directory
(the parts of an OCI image config that matter to a process).  An image the map
does not know behaves like one missing from the registry: the pod's container
waits in ``ErrImagePull``/``ImagePullBackOff``.

References are normalized as Docker does (``busybox`` is
``docker.io/library/busybox:latest``), so a pattern ``busybox`` matches
``busybox``, ``busybox:1.36`` and ``docker.io/library/busybox``; a pattern with
a tag matches only that tag; a pattern with ``*``/``?``/``[`` is a glob,
matched against the reference as written and in its normalized form.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_REGISTRY = "docker.io"
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The ``PATH`` most base images set in their config."""


@dataclass(frozen=True)
class ImageSpec:
    """What an image contributes to a container process (OCI image config fields).

    ``entrypoint`` and ``cmd`` follow Docker semantics: ``container.command``
    replaces the entrypoint, ``container.args`` replace ``cmd``.  ``files``
    maps paths inside the image to local files: a process whose program is
    one of them runs the local file (``/etc/bootstrap-kernel.sh`` of a kernel
    image runs this repository's script).
    """

    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    files: dict[str, str] = field(default_factory=dict)

    def argv(self, command: list[str] | None, args: list[str] | None) -> list[str]:
        """The process argv for a container with ``command``/``args`` (either may be ``None``).

        As documented for Kubernetes containers: a command without args ignores
        both the image's entrypoint and cmd; args alone run after the image's
        entrypoint.
        """
        if command:
            argv = list(command) + list(args or [])
        else:
            argv = list(self.entrypoint or []) + list(args if args else (self.cmd or []))
        if argv and argv[0] in self.files:
            argv[0] = self.files[argv[0]]
        return argv

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageSpec:
        """Read the JSON/YAML form: ``{entrypoint, cmd, env, workingDir}``."""
        env = data.get("env") or {}
        if isinstance(env, list):  # OCI style: ["KEY=value", ...]
            env = dict(item.split("=", 1) for item in env)
        return cls(
            entrypoint=_str_list(data.get("entrypoint")),
            cmd=_str_list(data.get("cmd")),
            env={str(k): str(v) for k, v in env.items()},
            working_dir=data.get("workingDir") or data.get("working_dir"),
        )


def _str_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference: ``repository`` normalized (``docker.io/library/busybox``)."""

    repository: str
    tag: str | None
    digest: str | None

    @property
    def normalized(self) -> str:
        """The fully qualified reference a container runtime reports (``...:latest`` when untagged)."""
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag or 'latest'}"


def parse_image(reference: str) -> ImageRef:
    """Parse ``reference`` as the Docker reference grammar does, adding the default registry and ``library/``."""
    if not reference or reference != reference.strip():
        raise ValueError(f"invalid reference format: {reference!r}")
    name, _, digest_part = reference.partition("@")
    digest = digest_part or None
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    first, _, rest = name.partition("/")
    # The first component is a registry host when it looks like one (reference/normalize.go).
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        registry, path = DEFAULT_REGISTRY, name
    else:
        registry, path = first, rest
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    return ImageRef(f"{registry}/{path}", tag, digest)


def image_id(reference: str) -> str:
    """A stable ``repo@sha256:...`` image ID, as ``containerStatuses[].imageID`` reports it."""
    ref = parse_image(reference)
    digest = ref.digest or "sha256:" + hashlib.sha256(ref.normalized.encode()).hexdigest()
    return f"{ref.repository}@{digest}"


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


class ImageMap:
    """Image patterns mapped to :class:`ImageSpec`, looked up by :meth:`resolve`.

    Later additions win over earlier ones for the same pattern; among
    different patterns an exact tag beats a bare repository, which beats a glob.
    """

    def __init__(self, entries: Mapping[str, ImageSpec] | None = None) -> None:
        self._exact: dict[tuple[str, str], ImageSpec] = {}
        self._repos: dict[str, ImageSpec] = {}
        self._globs: dict[str, ImageSpec] = {}
        for pattern, spec in (entries or {}).items():
            self.add(pattern, spec)

    def add(self, pattern: str, spec: ImageSpec) -> None:
        """Say how images matching ``pattern`` run (used by the gateway's kernel image setup and tests)."""
        if _is_glob(pattern):
            self._globs[pattern] = spec
            return
        ref = parse_image(pattern)
        if ref.tag is None and ref.digest is None:
            self._repos[ref.repository] = spec
        else:
            self._exact[(ref.repository, ref.digest or ref.tag or "")] = spec

    def resolve(self, reference: str) -> ImageSpec | None:
        """The spec for ``reference``, or ``None`` when this node cannot "pull" it."""
        try:
            ref = parse_image(reference)
        except ValueError:
            return None
        version = ref.digest or ref.tag or "latest"
        if (ref.repository, version) in self._exact:
            return self._exact[(ref.repository, version)]
        if ref.repository in self._repos:
            return self._repos[ref.repository]
        for pattern, spec in reversed(self._globs.items()):
            if fnmatch.fnmatchcase(reference, pattern) or fnmatch.fnmatchcase(ref.normalized, pattern):
                return spec
        return None

    def __contains__(self, reference: object) -> bool:
        return isinstance(reference, str) and self.resolve(reference) is not None

    def update_from(self, data: Mapping[str, Any]) -> None:
        """Add entries from the file form: ``{"images": {pattern: {entrypoint, cmd, env, workingDir}}}``
        (the ``images`` level may be omitted)."""
        images = data.get("images", data)
        for pattern, spec in images.items():
            self.add(str(pattern), ImageSpec.from_dict(spec or {}))

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, base: ImageMap | None = None) -> ImageMap:
        """Read a JSON or YAML image map file, on top of ``base`` (a copy of it) when given."""
        text = Path(path).read_text()
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        result = base.copy() if base is not None else cls()
        result.update_from(data or {})
        return result

    def copy(self) -> ImageMap:
        other = ImageMap()
        other._exact, other._repos, other._globs = dict(self._exact), dict(self._repos), dict(self._globs)
        return other

    @classmethod
    def default(cls) -> ImageMap:
        """Common base images mapped to this machine's shell and Python.

        ``busybox``/``alpine``/``debian``/``ubuntu`` run ``sh``; ``python`` images
        run the Python interpreter running this process (its directory first on
        ``PATH``), so pods can use the packages installed here.
        """
        shell_env = {"PATH": STANDARD_PATH}
        python_env = {"PATH": f"{Path(sys.executable).parent}:{STANDARD_PATH}", "LANG": "C.UTF-8"}
        images = cls()
        for repo in ("busybox", "alpine", "debian", "ubuntu"):
            images.add(repo, ImageSpec(cmd=["sh"], env=dict(shell_env)))
        images.add("python", ImageSpec(cmd=["python3"], env=dict(python_env)))
        return images
