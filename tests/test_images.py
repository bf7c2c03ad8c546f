"""The images operators build: plain, pinned, non-root Dockerfiles whose command is the bootstrap script the pods use.

No Docker engine is needed: each Dockerfile is parsed and checked against the
kernelspecs that name its image, and the shared ``bootstrap-kernel.sh`` and
Spark driver entry are run with stand-in programs.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "images"
KERNELSPECS = ROOT / "kernelspecs"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
BOOTSTRAP_IN_IMAGE = "/etc/bootstrap-kernel.sh"
SHARED_BOOTSTRAP = IMAGES / "kernel-common" / "bootstrap-kernel.sh"
SPARK_DRIVER = IMAGES / "kernel-common" / "spark_driver.py"
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE|CREDENTIAL|API_?KEY|ACCESS_?KEY)", re.IGNORECASE)
SECRET_FILE = re.compile(r"(\.pem|\.key|\.p12|\.pfx|id_rsa|id_ed25519|kubeconfig|\.netrc|\.npmrc|\.pypirc)$")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON (exec) form's argument list; fails for the shell form."""
        value = json.loads(self.args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), self
        return value

    def flags_and_words(self) -> tuple[dict[str, str], list[str]]:
        """``--name=value`` flags and the remaining words (COPY, ADD)."""
        flags, words = {}, []
        for word in self.args.split():
            if word.startswith("--") and not words:
                name, _, value = word[2:].partition("=")
                flags[name] = value
            else:
                words.append(word)
        return flags, words


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions of a Dockerfile: comment lines dropped, backslash continuations joined."""
    instructions, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and pending):
            continue
        if not line:
            continue
        pending = f"{pending} {line}".strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, args = pending.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    assert not pending, f"{path}: unterminated continuation"
    return instructions


def last(instructions: list[Instruction], keyword: str) -> Instruction | None:
    found = [i for i in instructions if i.keyword == keyword]
    return found[-1] if found else None


def image_dir(image: str) -> Path:
    """``elyra/kernel-r:dev`` or ``kernelgate/kernel-r:dev`` -> ``images/kernel-r``."""
    return IMAGES / image.rsplit(":", 1)[0].rsplit("/", 1)[-1]


def kernelspec_images() -> dict[str, str]:
    specs = {}
    for path in sorted(KERNELSPECS.glob("*/kernel.json")):
        specs[path.parent.name] = json.loads(path.read_text())["metadata"]["process_proxy"]["config"]["image_name"]
    return specs


def image_id(path: Path) -> str:
    return path.parent.name


# --------------------------------------------------------------------------- every Dockerfile


def test_there_is_a_gateway_image_and_one_for_every_kernelspec() -> None:
    names = {p.parent.name for p in DOCKERFILES}
    assert "gateway" in names
    for spec, image in kernelspec_images().items():
        assert (image_dir(image) / "Dockerfile").is_file(), f"{spec} names {image}, which images/ does not build"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=image_id)
def test_base_image_is_pinned_and_the_image_runs_as_non_root(dockerfile: Path) -> None:
    instructions = parse_dockerfile(dockerfile)
    for base in (i.args.split()[0] for i in instructions if i.keyword == "FROM"):
        name, _, tag = base.rpartition(":")
        assert name and "/" not in tag and tag != "latest" and re.search(r"\d", tag), f"{base} is not pinned"
    user = last(instructions, "USER")
    assert user is not None, "no USER: the image would run as root"
    assert user.args.split(":")[0] not in {"root", "0"}
    assert instructions[-1].keyword in {"CMD", "ENTRYPOINT"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=image_id)
def test_commands_are_exec_form_and_copies_come_from_this_repository(dockerfile: Path) -> None:
    instructions = parse_dockerfile(dockerfile)
    for keyword in ("CMD", "ENTRYPOINT"):
        if (found := last(instructions, keyword)) is not None:
            assert found.exec_form()  # exec form: signals reach the process, no shell in between
    for copy in (i for i in instructions if i.keyword in {"COPY", "ADD"}):
        flags, words = copy.flags_and_words()
        assert copy.keyword == "COPY", "ADD fetches and unpacks: use COPY or a checked download"
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"{copy.args}: {source} is not in the repository"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=image_id)
def test_no_secret_is_baked_in(dockerfile: Path) -> None:
    instructions = parse_dockerfile(dockerfile)
    for setting in (i for i in instructions if i.keyword in {"ENV", "ARG"}):
        names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", setting.args)
        assert not [n for n in names if SECRET_NAME.search(n)], f"{setting.keyword} {setting.args}"
    for copy in (i for i in instructions if i.keyword == "COPY"):
        _, words = copy.flags_and_words()
        for source in words[:-1]:
            files = [ROOT / source] if (ROOT / source).is_file() else list((ROOT / source).rglob("*"))
            assert not [f for f in files if SECRET_FILE.search(f.name)], f"{copy.args} copies key material"
    for path in (p for p in dockerfile.parent.rglob("*") if p.is_file()):
        assert "PRIVATE KEY-----" not in path.read_text(errors="replace")


# --------------------------------------------------------------------------- kernel images and their kernelspecs


KERNEL_DOCKERFILES = [p for p in DOCKERFILES if p.parent.name.startswith("kernel-")]


@pytest.mark.parametrize("dockerfile", KERNEL_DOCKERFILES, ids=image_id)
def test_kernel_image_runs_the_bootstrap_script(dockerfile: Path) -> None:
    instructions = parse_dockerfile(dockerfile)
    copies = [i.flags_and_words() for i in instructions if i.keyword == "COPY"]
    [(flags, words)] = [(f, w) for f, w in copies if w[-1] == BOOTSTRAP_IN_IMAGE]
    assert words[0].endswith("/bootstrap-kernel.sh")
    made_executable = [i for i in instructions if i.keyword == "RUN" and f"chmod 0755 {BOOTSTRAP_IN_IMAGE}" in i.args]
    assert flags.get("chmod") == "0755" or made_executable
    assert last(instructions, "CMD").exec_form() == [BOOTSTRAP_IN_IMAGE]
    entrypoint = last(instructions, "ENTRYPOINT")
    # Spark images keep Spark's entry point, which runs a command it does not know as given.
    assert entrypoint is None or entrypoint.exec_form() == ["/opt/entrypoint.sh"]
    assert "gateway/launcher/" in {w[0] for _, w in copies}, "the image needs the launcher the bootstrap runs"


@pytest.mark.parametrize(("spec", "image"), sorted(kernelspec_images().items()))
def test_kernel_pod_command_is_the_bootstrap_its_image_installs(spec: str, image: str) -> None:
    instructions = parse_dockerfile(image_dir(image) / "Dockerfile")
    [pod] = [d for d in yaml.safe_load_all((KERNELSPECS / spec / "scripts" / "kernel-pod.yaml").read_text())
             if d and d.get("kind") == "Pod"]
    container = pod["spec"]["containers"][0]
    if "command" in container:  # replaces the image's ENTRYPOINT and CMD
        assert container["command"] == [BOOTSTRAP_IN_IMAGE] and "args" not in container
    else:  # the image's own ENTRYPOINT + CMD run
        assert last(instructions, "CMD").exec_form() == [BOOTSTRAP_IN_IMAGE]
    copies = [i.flags_and_words()[1] for i in instructions if i.keyword == "COPY"]
    assert any(words[-1] == BOOTSTRAP_IN_IMAGE for words in copies)


def test_spark_images_carry_the_driver_entry_run_sh_submits() -> None:
    run_sh = (KERNELSPECS / "spark_python_kubernetes" / "bin" / "run.sh").read_text()
    assert "local:///opt/kernelgate/spark_driver.py" in run_sh
    for image in {i for s, i in kernelspec_images().items() if s.startswith("spark_")}:
        copies = [i.flags_and_words()[1] for i in parse_dockerfile(image_dir(image) / "Dockerfile")
                  if i.keyword == "COPY"]
        assert ["images/kernel-common/spark_driver.py", "/opt/kernelgate/spark_driver.py"] in copies, image


def test_gateway_image_serves_on_both_ports_without_a_healthcheck() -> None:
    instructions = parse_dockerfile(IMAGES / "gateway" / "Dockerfile")
    keywords = {i.keyword for i in instructions}
    assert "HEALTHCHECK" not in keywords  # Kubernetes probes /healthz and /readyz
    assert {p for i in instructions if i.keyword == "EXPOSE" for p in i.args.split()} == {"8888", "8877"}
    assert last(instructions, "CMD").exec_form()[:2] == ["kernelgate", "serve"]
    assert any(i.keyword == "RUN" and "pip install /tmp/kernelgate" in i.args for i in instructions)
    copies = [i.flags_and_words()[1] for i in instructions if i.keyword == "COPY"]
    assert ["kernelspecs/", "/usr/local/share/jupyter/kernels/"] in copies


# --------------------------------------------------------------------------- the shared bootstrap script


def run_bootstrap(tmp_path: Path, programs: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess[str]:
    """Run the shared bootstrap on a PATH of stand-ins: ``python3`` (prints its arguments) and ``programs``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("sh", "tr"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    for program in ("python3", *programs):
        stand_in = bin_dir / program
        stand_in.write_text('#!/bin/sh\nfor a in "$@"; do echo "ARG $a"; done\n')
        stand_in.chmod(0o755)
    return subprocess.run(["sh", str(SHARED_BOOTSTRAP)], env={"PATH": str(bin_dir), **env},
                          capture_output=True, text=True, timeout=30)


def launcher_args(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line[4:] for line in done.stdout.splitlines() if line.startswith("ARG ")]


def test_bootstrap_runs_irkernel_under_the_launcher_for_r(tmp_path: Path) -> None:
    done = run_bootstrap(tmp_path, ("R",), KERNEL_LANGUAGE="R", KERNEL_RESPONSE_KEY="SECRET-KEY",
                         SPARK_CONTEXT_INITIALIZATION_MODE="lazy", KERNEL_LAUNCH_TIMEOUT="45")

    assert done.returncode == 0, done.stderr
    assert launcher_args(done) == ["-m", "gateway.launcher",
                                   "--kernel-cmd", "R --slave -e 'IRkernel::main()' --args {connection_file}",
                                   "--spark-context-initialization-mode", "lazy", "--response-timeout", "45"]
    assert "SECRET-KEY" not in done.stdout + done.stderr


def test_bootstrap_runs_the_launchers_ipython_default_for_python(tmp_path: Path) -> None:
    done = run_bootstrap(tmp_path, KERNEL_LANGUAGE="Python")

    assert done.returncode == 0, done.stderr
    assert launcher_args(done) == ["-m", "gateway.launcher", "--spark-context-initialization-mode", "none"]


@pytest.mark.parametrize(("env", "message"), [
    ({"KERNEL_LANGUAGE": "R"}, "this image has no R installation"),
    ({"KERNEL_LANGUAGE": "scala"}, "this image has no almond Scala kernel"),
    ({"KERNEL_LANGUAGE": "julia-SECRET-VALUE"}, "does not run"),
    ({"KERNEL_LANGUAGE": "python", "SPARK_CONTEXT_INITIALIZATION_MODE": "SECRET-VALUE"}, "must be none, lazy or eager"),
])
def test_bootstrap_refuses_what_the_image_cannot_run_without_echoing_values(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    done = run_bootstrap(tmp_path, **env)

    assert done.returncode == 1 and message in done.stderr and "bootstrap-kernel.sh:" in done.stderr
    assert "SECRET-VALUE" not in done.stdout + done.stderr and not launcher_args(done)


def test_spark_driver_hands_the_pod_over_to_the_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(os, "execv", lambda path, argv: calls.append((path, argv)))
    monkeypatch.setattr("sys.argv", [str(SPARK_DRIVER), "--extra"])
    runpy.run_path(str(SPARK_DRIVER), run_name="__main__")
    assert calls == [(BOOTSTRAP_IN_IMAGE, [BOOTSTRAP_IN_IMAGE, "--extra"])]
