"""Enterprise Gateway 3.3.0's Kubernetes kernelspec files, from its source distribution, for the template tests.

Nothing of Enterprise Gateway is kept in this repository.  :func:`eg_kernelspec_files` downloads
the source distribution once (``pip download --no-deps --no-binary :all:
jupyter_enterprise_gateway==3.3.0``) and keeps only what the template tests read, in
``~/.cache/kernelgate/eg-3.3.0-kernelspecs`` (under ``XDG_CACHE_HOME`` when set):
``kernel-pod.yaml.j2`` from ``etc/kernel-launchers/kubernetes/scripts/`` and the
``kernel.json`` of each ``etc/kernelspecs/*_kubernetes`` folder.  :func:`eg_kernelspec` lays
one kernelspec folder out as EG's ``etc/Makefile`` does (the template in its ``scripts/``).
Where the registry cannot be reached the calling test is skipped with the reason.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import pytest

EG_VERSION = "3.3.0"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kernelgate" / f"eg-{EG_VERSION}-kernelspecs"
TEMPLATE_NAME = "kernel-pod.yaml.j2"
UNREACHABLE = ("NewConnectionError", "Max retries exceeded", "Temporary failure in name resolution",
               "Name or service not known", "Network is unreachable", "Connection refused", "ConnectTimeoutError",
               "ProxyError", "Read timed out", "Could not fetch URL", "No route to host")
"""What pip prints when the package registry cannot be reached."""


def eg_kernelspec_files() -> Path:
    """The cached folder: ``kernel-pod.yaml.j2`` and ``kernelspecs/<name>/kernel.json``; downloaded when missing."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (CACHE / TEMPLATE_NAME).is_file():
            _download_into(CACHE)
    return CACHE


def eg_kernelspec(name: str, destination: Path, *, version: str = EG_VERSION) -> Path:
    """EG's kernelspec ``name`` as its Makefile builds it: ``kernel.json`` (``VERSION`` replaced) and ``scripts/``."""
    files = eg_kernelspec_files()
    folder = destination / name
    (folder / "scripts").mkdir(parents=True)
    kernel_json = (files / "kernelspecs" / name / "kernel.json").read_text(encoding="utf-8")
    (folder / "kernel.json").write_text(kernel_json.replace("VERSION", version), encoding="utf-8")
    shutil.copy(files / TEMPLATE_NAME, folder / "scripts" / TEMPLATE_NAME)
    return folder


def eg_template_text() -> str:
    return (eg_kernelspec_files() / TEMPLATE_NAME).read_text(encoding="utf-8")


def _download_into(cache: Path) -> None:
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "download", "--no-deps",
                "--no-binary", ":all:", f"jupyter_enterprise_gateway=={EG_VERSION}", "--dest", scratch]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            output = done.stdout + done.stderr
            if any(marker in output for marker in UNREACHABLE):
                pytest.skip(f"the package registry cannot be reached to download EG {EG_VERSION}: "
                            f"{output.strip().splitlines()[-1]}")
            raise RuntimeError(f"pip download of EG {EG_VERSION} failed:\n{output}")
        [archive] = Path(scratch).glob("*.tar.gz")
        staged = Path(scratch) / "files"
        with tarfile.open(archive) as sdist:
            for member in sdist.getmembers():
                parts = PurePosixPath(member.name).parts[1:]  # below the top folder
                if not member.isfile():
                    continue
                if parts == ("etc", "kernel-launchers", "kubernetes", "scripts", TEMPLATE_NAME):
                    target = staged / TEMPLATE_NAME
                elif len(parts) == 4 and parts[:2] == ("etc", "kernelspecs") and parts[3] == "kernel.json" \
                        and parts[2].endswith("_kubernetes"):
                    target = staged / "kernelspecs" / parts[2] / "kernel.json"
                else:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = sdist.extractfile(member)
                assert source is not None
                target.write_bytes(source.read())
        shutil.rmtree(cache / "kernelspecs", ignore_errors=True)
        shutil.move(str(staged / "kernelspecs"), cache / "kernelspecs")
        shutil.move(str(staged / TEMPLATE_NAME), cache / TEMPLATE_NAME)  # last: its presence says the cache is whole
