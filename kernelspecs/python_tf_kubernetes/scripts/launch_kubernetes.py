"""Render, and with ``--create`` create, a kernel's pod from this kernelspec's ``kernel-pod.yaml``.

See ``gateway.launch_kubernetes`` (``python launch_kubernetes.py --help``); this
copy only finds the kernelspec folder it belongs to.
"""

import sys
from pathlib import Path

KERNELSPEC = Path(__file__).resolve().parent.parent
try:
    from gateway.launch_kubernetes import main
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(KERNELSPEC.parents[1]))
    from gateway.launch_kubernetes import main

if __name__ == "__main__":
    sys.exit(main(KERNELSPEC))
