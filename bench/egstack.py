"""Enterprise Gateway 3.3's server stack for the benchmark: a virtual environment of its own, in the cache.

EG 3.3 pins ``jupyter_client<7``, ``jupyter_server<2`` and ``pyzmq<25``, which cannot share an
environment with kernelgate's, so :func:`eg_stack` installs ``jupyter_enterprise_gateway==3.3.0``
from the package registry into ``~/.cache/kernelgate/eg-3.3.0/server-env`` (beside the source
distribution, kernel image files and ``elyra/kernel-py`` environment that
:func:`tests.egharness.enterprise_gateway` keeps there), once; later runs reuse it.

The same environment runs EG's floor (``bench/egfloor.py``: EG's own ``jupyter_client`` 6
starting the ipykernel of the ``elyra/kernel-py`` environment, the kernel EG's pods run).

EG loads the in-cluster configuration when its Kubernetes process proxy is imported, and so does
its ``launch_kubernetes.py``; a pod finds its service account's token and CA at fixed paths under
``/var/run/secrets``.  The environment's ``sitecustomize.py`` points the ``kubernetes`` client's
constants for those paths at a folder named by ``KERNELGATE_BENCH_SERVICEACCOUNT_DIR`` when that
variable is set (only the benchmark's EG process and its children have it): the folder the
benchmark writes the token and CA into (:mod:`bench.egcluster`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.egharness import EG_VERSION, PIP_TIMEOUT, EnterpriseGateway, _locked, _pip, enterprise_gateway  # noqa: E402

SERVICEACCOUNT_DIR_VARIABLE = "KERNELGATE_BENCH_SERVICEACCOUNT_DIR"
REQUIREMENTS = [f"jupyter_enterprise_gateway=={EG_VERSION}"]
SITECUSTOMIZE = f'''"""The benchmark's service account files for the kubernetes client's in-cluster configuration."""
import os

_folder = os.environ.get("{SERVICEACCOUNT_DIR_VARIABLE}")
if _folder:
    from kubernetes.config import incluster_config

    incluster_config.SERVICE_TOKEN_FILENAME = os.path.join(_folder, "token")
    incluster_config.SERVICE_CERT_FILENAME = os.path.join(_folder, "ca.crt")
'''


@dataclass(frozen=True)
class EGStack:
    """EG's files (:class:`tests.egharness.EnterpriseGateway`) and its server's environment."""

    eg: EnterpriseGateway
    server_env: Path

    @property
    def python(self) -> Path:
        return self.server_env / "bin" / "python"

    @property
    def bin(self) -> Path:
        return self.server_env / "bin"

    @property
    def kernel_python(self) -> Path:
        """The ``elyra/kernel-py`` image's Python: the kernel EG's pods run, and EG's floor starts."""
        return self.eg.image_env / "bin" / "python"


def eg_stack() -> EGStack:
    """EG 3.3.0's files and server environment, made in the cache first when missing (a few minutes once).

    Called by ``bench/eg_starts.py`` before anything is measured; raises
    :class:`tests.egharness.RegistryUnreachable` when the registry cannot be reached.
    """
    eg = enterprise_gateway()
    with _locked(eg.source.parent / ".lock"):
        return EGStack(eg, _server_environment(eg.source.parent))


def _server_environment(cache: Path) -> Path:
    env_dir = cache / "server-env"
    marker = env_dir / "kernelgate-requirements.json"
    wanted = {"requirements": REQUIREMENTS, "sitecustomize": SITECUSTOMIZE}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return env_dir
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env_dir)], check=True, capture_output=True,
                   timeout=PIP_TIMEOUT)
    python = env_dir / "bin" / "python"
    _pip(f"installing Enterprise Gateway {EG_VERSION}'s server", ["install", *REQUIREMENTS], python=python)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "sitecustomize.py").write_text(SITECUSTOMIZE)
    marker.write_text(json.dumps(wanted))
    return env_dir


if __name__ == "__main__":  # make the stack ahead of a run: python bench/egstack.py
    stack = eg_stack()
    print(f"Enterprise Gateway {EG_VERSION}: server in {stack.server_env}, kernels in {stack.eg.image_env}")
