"""``python -m gateway.launcher``: options, the response key, then the kernel.

An IPython kernel runs in this process (:mod:`gateway.launcher.inprocess`),
so a kernel pod is one process; another language's kernel (``--kernel-cmd``)
runs as a child of it (:mod:`gateway.launcher.supervise`).

Exit status: 0 when the kernel stopped by itself or on request (a shutdown on
the comm port, SIGTERM); 1 when the payload could not be delivered or the
kernel could not start; 2 for bad options; a child kernel's own status when it
exits by itself.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence

from . import protocol
from .options import UsageError, parse_options

log = logging.getLogger("gateway.launcher")


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point of ``python -m gateway.launcher``."""
    env = os.environ if env is None else env
    logging.basicConfig(
        level=env.get("LOG_LEVEL") or env.get("EG_LOG_LEVEL") or "INFO",
        format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s",
    )
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv, env)
        key = protocol.ResponseKey.choose(options.public_keys)
    except (UsageError, protocol.PayloadError) as exc:
        print(f"gateway.launcher: {exc}", file=sys.stderr)
        return 2
    if options.language != "python" and options.kernel_cmd is None:
        log.warning("KERNEL_LANGUAGE=%s without --kernel-cmd: running an IPython kernel", options.language)
    if options.spark_context_initialization_mode != "none":
        log.warning("no Spark context is created: this launcher supports spark-context-initialization-mode none only")
    # Each way of running a kernel is imported only when used: the in-process one must not pay for
    # asyncio before ipykernel loads it, nor the child one for ipykernel.
    if options.kernel_cmd is None:
        from . import inprocess

        return inprocess.run(options, key, env)
    from . import supervise

    return supervise.run(options, key, env)
