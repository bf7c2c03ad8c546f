"""The control-plane binary: built from ``e2e/controlplane/`` with Go, once per source.

:func:`binary` is called by the launcher (and by ``python -m e2e.kube build``).
The binary is kept in ``~/.cache/kernelgate/controlplane/<release>-<digest>/``
(``KERNELGATE_CONTROLPLANE_CACHE`` moves the root), the digest taken over
``go.mod``, ``go.sum``, ``main.go`` and the build flags: a CI cache keyed by ``go.sum`` restores it
whole, and any change of source or pins builds anew.  A cold build compiles
all of Kubernetes (see the README for its time and memory); Go's own build cache
makes a rebuild after a small change take seconds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parents[1] / "controlplane"
CACHE_ENV = "KERNELGATE_CONTROLPLANE_CACHE"
SOURCE_FILES = ("go.mod", "go.sum", "main.go")


class BuildError(RuntimeError):
    """The control plane could not be built (no Go toolchain, or the build failed: its output is the message)."""


def release() -> str:
    """The Kubernetes release ``go.mod`` pins (``v1.37.2``)."""
    found = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)", (SOURCE / "go.mod").read_text(), re.M)
    if found is None:
        raise BuildError(f"{SOURCE / 'go.mod'} requires no k8s.io/kubernetes release")
    return found.group(1)


def build_flags(version: str) -> list[str]:
    """``go build`` flags: stamp the release into the binary, as Kubernetes' own build does, so that
    ``/version`` answers ``v1.37.2`` and not ``v0.0.0-master``."""
    major, minor = version.lstrip("v").split(".")[:2]
    stamps = [f"{package}.{name}={value}"
              for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
              for name, value in (("gitVersion", version), ("gitMajor", major), ("gitMinor", minor),
                                  ("gitTreeState", "clean"))]
    return ["-trimpath", "-ldflags", " ".join(f"-X {stamp}" for stamp in stamps)]


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kernelgate" / "controlplane"


def binary_path() -> Path:
    """Where the binary for the current source lives (whether or not it is built yet)."""
    digest = hashlib.sha256()
    for name in SOURCE_FILES:
        digest.update((SOURCE / name).read_bytes())
    digest.update("\0".join(build_flags(release())).encode())
    return cache_root() / f"{release()}-{digest.hexdigest()[:12]}" / "controlplane"


def binary() -> Path:
    """The built binary, building it first when the cache lacks it (blocking: minutes when cold)."""
    path = binary_path()
    if path.exists():
        return path
    go = shutil.which("go")
    if go is None:
        raise BuildError("the real control plane is built with Go (1.26 or newer), which is not installed")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    log.warning("building the control plane (Kubernetes %s) into %s; a cold build takes many minutes",
                release(), path.parent)
    done = subprocess.run(["nice", "-n", "10", go, "build", *build_flags(release()), "-o", str(partial), "."],
                          cwd=SOURCE, capture_output=True, text=True)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BuildError(f"go build in {SOURCE} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    partial.replace(path)  # atomic: a concurrent reader sees no binary or a whole one
    return path
