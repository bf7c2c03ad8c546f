"""``python -m e2e.kube``: build the control plane, or run it with the node agent until Ctrl-C.

    python -m e2e.kube build    # build (or find) the binary and print its path
    python -m e2e.kube run      # start the cluster, print KUBECONFIG=..., stop on Ctrl-C
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from e2e.kube import build
from e2e.kube.launcher import ControlPlane


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.kube", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build (or find in the cache) the control-plane binary; print its path")
    run = commands.add_parser("run", help="run the control plane and the node agent until interrupted")
    run.add_argument("--work-dir", type=Path, help="keep certificates, kubeconfigs, data and logs here (kept after)")
    args = parser.parse_args(argv)
    if args.command == "build":
        print(build.binary())
        return 0
    plane = ControlPlane(work_dir=args.work_dir)
    plane.start()
    try:
        print(f"KUBECONFIG={plane.admin_kubeconfig}", flush=True)
        print(f"logs: {plane.log_dir}  (Ctrl-C stops the cluster)", flush=True)
        for signum in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: a background job inherits it ignored
            signal.signal(signum, lambda *_: sys.exit(0))
        signal.pause()
    finally:
        plane.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
