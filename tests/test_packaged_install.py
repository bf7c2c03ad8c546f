"""An installed kernelgate (a built wheel, not an editable install) carries everything it reads at run time.

The wheel is built from this checkout and installed into a fresh virtualenv whose only
link to the checkout is the dependencies it borrows from the test environment; the
gateway then runs from a folder that is not the checkout, finds its kernelspecs, and
starts and deletes a kernel on its embedded simulated cluster (which needs the kernel
image's bootstrap script and the manifest's RBAC).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHECKOUT = Path(__file__).resolve().parents[1]
WAIT = 120


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding kernelgate from a wheel; its python."""
    work = tmp_path_factory.mktemp("packaged")
    wheels = work / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels),
                            str(CHECKOUT)], capture_output=True, text=True, timeout=600)
    if built.returncode != 0 and "Could not find a version" in built.stderr + built.stdout:
        pytest.skip(f"the build backend could not be fetched from the package registry: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("kernelgate-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # The dependencies come from the test environment; kernelgate itself only from the wheel.
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: pip would otherwise uninstall the running environment's own kernelgate first.
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--ignore-installed", "--prefix",
                    str(venv), str(wheel)],
                   check=True, timeout=300)
    return python


def test_the_wheel_holds_the_kernelspecs_and_reads_them_from_its_install(installed: Path, tmp_path: Path) -> None:
    probe = ("import gateway, gateway.config as c, fakes.manifests as m, fakes.node.kernel_images as k, json;"
             "print(json.dumps([gateway.__file__, str(c.PACKAGED_KERNELSPECS), str(m.MANIFEST),"
             " str(k.repository_root())]))")
    out = subprocess.run([str(installed), "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.returncode == 0, out.stderr
    module, kernelspecs, manifest, root = (Path(p) for p in json.loads(out.stdout))
    prefix = installed.parent.parent
    assert CHECKOUT not in module.parents, "kernelgate was imported from the checkout, not the wheel"
    assert prefix in kernelspecs.parents and prefix in manifest.parents and prefix in root.parents
    assert (kernelspecs / "python_kubernetes" / "kernel.json").is_file()
    assert (kernelspecs / "python_kubernetes" / "scripts" / "kernel-pod.yaml").is_file()
    assert manifest.is_file()
    assert os.access(root / "images" / "kernel-py" / "bootstrap-kernel.sh", os.X_OK)


def test_an_installed_gateway_lists_kernelspecs_and_runs_a_kernel(installed: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KUBECONFIG", "EG_RESPONSE_PORT")}
    env["PATH"] = f"{installed.parent}:{env.get('PATH', '')}"
    process = subprocess.Popen([str(installed), "-m", "gateway.cli", "serve", "--ip", "127.0.0.1", "--port", "0",
                                "--log-level", "WARNING"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert process.stdout is not None
        url = ""
        for line in process.stdout:
            if "serving at" in line:
                url = line.split("serving at ", 1)[1].split()[0]
                break
        assert url, "the installed gateway exited before serving"
        with urllib.request.urlopen(f"{url}/api/kernelspecs", timeout=WAIT) as answer:
            specs = json.load(answer)
        assert "python_kubernetes" in specs["kernelspecs"], specs
        start = urllib.request.Request(f"{url}/api/kernels", method="POST", data=json.dumps(
            {"name": "python_kubernetes", "env": {"KERNEL_USERNAME": "alice"}}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(start, timeout=WAIT) as answer:
            assert answer.status == 201
            kernel = json.load(answer)
        delete = urllib.request.Request(f"{url}/api/kernels/{kernel['id']}", method="DELETE")
        with urllib.request.urlopen(delete, timeout=WAIT) as answer:
            assert answer.status == 204
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=10)
