"""Enterprise Gateway 3.3.0 as its operators have it: its kernelspecs and its ``elyra/kernel-py`` image.

Nothing of Enterprise Gateway is kept in this repository.  :func:`enterprise_gateway` downloads
its source distribution from the package registry the first time
(``pip download --no-deps --no-binary :all: jupyter_enterprise_gateway==3.3.0``), into
:data:`CACHE` (``~/.cache/kernelgate/eg-3.3.0``, under ``XDG_CACHE_HOME`` when set), and
there, once:

* unpacks it;
* lays out the kernel image's files as ``etc/Makefile``'s ``kernel_image_files`` target does
  (``bootstrap-kernel.sh``, and ``kernel-launchers/`` with the Python and R launchers);
* makes the Python environment of ``elyra/kernel-py`` from ``etc/docker/kernel-py/Dockerfile``:
  a virtual environment (``python -m venv``) holding the packages the Dockerfile installs with
  its version caps (``ipykernel<7``, ``jupyter_client<9``...; its conda packages from PyPI).

Later calls find everything in the cache.  :meth:`EnterpriseGateway.build_kernelspecs` builds
the Kubernetes kernelspecs as ``etc/Makefile`` does (EG's ``kernel-launchers/kubernetes``
files, its ``kernel-pod.yaml.j2`` among them, copied into each kernelspec, ``VERSION`` replaced
by the release's tag), and :meth:`EnterpriseGateway.kernel_py_image` says how the image runs on
the simulated node: the Dockerfile's ``CMD`` and ``ENV`` with that environment's Python first on
``PATH``.  The image's files live in the cache, not at ``/usr/local/bin``, so the image's
environment also names their folder in ``KERNEL_LAUNCHERS_DIR``, a variable EG's bootstrap
script reads for that purpose.  The base image (``jupyter/scipy-notebook``) contributes nothing
but Python: its other packages play no part in starting a kernel.

Where the registry cannot be reached, :class:`RegistryUnreachable` says so; any other failure
is an error.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fakes.node.images import STANDARD_PATH, ImageSpec

EG_VERSION = "3.3.0"
DISTRIBUTION = "jupyter_enterprise_gateway"
TAG = EG_VERSION
"""What ``etc/Makefile`` puts in place of ``VERSION`` in kernel.json files (``TAG`` of a release build)."""
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kernelgate" / f"eg-{EG_VERSION}"
BOOTSTRAP_IN_IMAGE = "/usr/local/bin/bootstrap-kernel.sh"
"""Where the kernel image's Dockerfile ``ADD``s the bootstrap script (``/usr/local/bin/``)."""
NETWORK_FAILURES = (
    "NewConnectionError", "Max retries exceeded", "Temporary failure in name resolution", "Name or service not known",
    "Network is unreachable", "Connection refused", "ConnectTimeoutError", "ProxyError", "Read timed out",
    "Could not fetch URL", "No route to host",
)
"""What pip prints when the package registry cannot be reached."""
PIP_TIMEOUT = 900
"""Bound on one pip run (a first download of the image's packages on a slow link)."""


class RegistryUnreachable(Exception):
    """The package registry could not be reached: the EG tier cannot get its files."""


@dataclass(frozen=True)
class Dockerfile:
    """What a kernel image's Dockerfile contributes to a kernel process."""

    pip_requirements: list[str] = field(default_factory=list)
    conda_packages: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cmd: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        """Read ``RUN pip install``, ``RUN conda install``, ``ENV`` and ``CMD`` instructions (the last ``CMD`` wins)."""
        parsed = cls()
        for instruction, rest in _instructions(text):
            if instruction == "RUN":
                command = shlex.split(rest.split("&&")[0])
                packages = [word for word in command[2:] if not word.startswith("-")]
                if command[:2] == ["pip", "install"]:
                    parsed.pip_requirements.extend(packages)
                elif command[:2] == ["conda", "install"]:
                    parsed.conda_packages.extend(packages)
            elif instruction == "ENV":
                words = shlex.split(rest)
                if len(words) == 2 and "=" not in words[0]:
                    words = [f"{words[0]}={words[1]}"]
                for word in words:
                    key, _, value = word.partition("=")
                    parsed.env[key] = value
            elif instruction == "CMD":
                parsed.cmd[:] = json.loads(rest) if rest.startswith("[") else ["/bin/sh", "-c", rest]
        return parsed

    def argv(self) -> list[str]:
        """The ``CMD`` as the node runs it: a shell-form ``CMD`` that is one program is that program."""
        if self.cmd[:2] == ["/bin/sh", "-c"] and len(shlex.split(self.cmd[2])) == 1:
            return shlex.split(self.cmd[2])
        return list(self.cmd)


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined, comments left out."""
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        logical += " " + stripped.removesuffix("\\").strip() if logical else stripped.removesuffix("\\").strip()
        if stripped.endswith("\\"):
            continue
        if logical:
            instruction, _, rest = logical.partition(" ")
            yield instruction.upper(), rest.strip()
        logical = ""


@dataclass(frozen=True)
class EnterpriseGateway:
    """EG's unpacked source distribution, its kernel image's files and its kernel-py environment, in the cache."""

    source: Path
    image_files: Path
    image_env: Path
    dockerfile: Dockerfile

    def build_kernelspecs(self, destination: Path) -> Path:
        """The Kubernetes kernelspecs in ``destination``/kernelspecs, built as ``etc/Makefile`` builds them.

        Every ``*_kubernetes`` and ``*_operator`` kernelspec (the Makefile's ``kernelspecs_kubernetes``
        set) gets the container launchers of its kind in its folder (``scripts/launch_kubernetes.py``,
        ``scripts/kernel-pod.yaml.j2``...), its language's resources (logos), and ``VERSION`` in its
        kernel.json replaced by :data:`TAG`.
        """
        etc = self.source / "etc"
        built = destination / "kernelspecs"
        for spec in sorted((etc / "kernelspecs").iterdir()):
            if not spec.name.endswith(("_kubernetes", "_operator")):
                continue
            target = built / spec.name
            shutil.copytree(spec, target)
            launchers = "operators" if spec.name.endswith("_operator") else "kubernetes"
            shutil.copytree(etc / "kernel-launchers" / launchers, target, dirs_exist_ok=True)
            for marker, resources in (("R", "ir"), ("scala", "apache_toree"), ("python", "python"), ("tf", "tensorflow")):
                if marker in spec.name:
                    shutil.copytree(etc / "kernel-resources" / resources, target, dirs_exist_ok=True)
            kernel_json = target / "kernel.json"
            kernel_json.write_text(kernel_json.read_text().replace("VERSION", TAG))
        return built

    def kernel_py_image(self) -> ImageSpec:
        """How ``elyra/kernel-py`` runs on the simulated node: EG's bootstrap script and launcher, in its environment."""
        env = {key: value for key, value in self.dockerfile.env.items() if "$" not in value}
        env.update({
            "PATH": f"{self.image_env / 'bin'}:{STANDARD_PATH}",
            "LANG": "C.UTF-8",
            "KERNEL_LAUNCHERS_DIR": str(self.image_files / "kernel-launchers"),
        })
        return ImageSpec(cmd=self.dockerfile.argv(), env=env,
                         files={BOOTSTRAP_IN_IMAGE: str(self.image_files / "bootstrap-kernel.sh")})


def enterprise_gateway(cache: Path = CACHE) -> EnterpriseGateway:
    """EG 3.3.0's files and kernel-py environment, from ``cache``, downloaded and made there first when missing.

    Called by the EG tier's fixtures; several test processes may call it at once (a lock file
    serializes them).  Raises :class:`RegistryUnreachable` when a download cannot reach the registry.
    """
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / ".lock"):
        source = _unpacked(cache)
        dockerfile = Dockerfile.parse((source / "etc" / "docker" / "kernel-py" / "Dockerfile").read_text())
        return EnterpriseGateway(source, _image_files(cache, source), _image_environment(cache, dockerfile), dockerfile)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _unpacked(cache: Path) -> Path:
    """The source distribution, unpacked in ``cache``/source (downloaded into ``cache``/sdist first)."""
    source = cache / "source"
    if source.is_dir():
        return source
    sdist_dir = cache / "sdist"
    archives = sorted(sdist_dir.glob(f"{DISTRIBUTION}-{EG_VERSION}.tar.gz"))
    if not archives:
        with tempfile.TemporaryDirectory(dir=cache) as download:
            _pip(f"downloading {DISTRIBUTION} {EG_VERSION}",
                 ["download", "--no-deps", "--no-binary", ":all:", f"{DISTRIBUTION}=={EG_VERSION}", "--dest", download])
            found = sorted(Path(download).glob("*.tar.gz"))
            if len(found) != 1:
                raise RuntimeError(f"pip download left {[p.name for p in found]} instead of one source archive")
            sdist_dir.mkdir(exist_ok=True)
            archives = [found[0].replace(sdist_dir / found[0].name)]
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        with tarfile.open(archives[0]) as archive:
            if hasattr(tarfile, "data_filter"):  # Python 3.10.12, 3.11.4 and later: nothing lands outside scratch
                archive.extractall(scratch, filter="data")
            else:
                archive.extractall(scratch)  # PyPI's own archive of a pinned release
        (top,) = Path(scratch).iterdir()
        top.replace(source)
    return source


def _image_files(cache: Path, source: Path) -> Path:
    """The kernel image's files, laid out as ``etc/Makefile``'s ``kernel_image_files`` target lays them out."""
    files = cache / "kernel_image_files"
    if files.is_dir():
        return files
    launchers = source / "etc" / "kernel-launchers"
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        staged = Path(scratch) / "files"
        shutil.copytree(launchers / "bootstrap", staged)
        for language in ("python", "R"):  # scala's lib is built with sbt, which the Python image does not need
            shutil.copytree(launchers / language, staged / "kernel-launchers" / language)
        staged.replace(files)
    return files


def _image_environment(cache: Path, dockerfile: Dockerfile) -> Path:
    """The kernel-py image's Python environment in ``cache``/kernel-py-env, made when missing or incomplete.

    Made with this interpreter (``python -m venv``), then filled by its own pip; a marker written
    last names what it holds, so an interrupted or outdated one is made again.
    """
    env_dir = cache / "kernel-py-env"
    requirements = [*dockerfile.pip_requirements, *dockerfile.conda_packages]
    marker = env_dir / "kernelgate-requirements.json"
    if marker.is_file() and json.loads(marker.read_text()) == requirements:
        return env_dir
    shutil.rmtree(env_dir, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, capture_output=True, timeout=PIP_TIMEOUT)
    _pip("installing the kernel-py image's packages", ["install", *requirements], python=env_dir / "bin" / "python")
    marker.write_text(json.dumps(requirements))
    return env_dir


def _pip(what: str, arguments: list[str], *, python: Path | None = None) -> None:
    """Run pip (of ``python``, else of this interpreter); :class:`RegistryUnreachable` when it cannot reach the registry."""
    argv = [str(python or sys.executable), "-m", "pip", "--disable-pip-version-check", "--no-input", "--retries", "2",
            *arguments]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired as err:
        raise RegistryUnreachable(f"{what}: pip did not finish within {PIP_TIMEOUT} s") from err
    if done.returncode == 0:
        return
    output = done.stdout + done.stderr
    last = output.strip().splitlines()[-1] if output.strip() else f"exit status {done.returncode}"
    if any(marker in output for marker in NETWORK_FAILURES):
        raise RegistryUnreachable(f"{what}: the package registry cannot be reached ({last})")
    raise RuntimeError(f"{what} failed: {shlex.join(argv)}\n{output}")
