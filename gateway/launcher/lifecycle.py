"""The life of an IPython kernel running in the launcher's own process: its phases, and how it is stopped.

The main thread sets the kernel up and runs its loop; the comm port's threads,
the payload's delivery thread and the SIGTERM handler ask for a stop.  The
phases, and who moves between them::

    STARTING --begin()--> RUNNING --stop()--> STOPPING --end()--> ENDED
        |                    |                    ^
        +------stop()--------|--------------------+   (the kernel never runs)
                             +------end()-----------> ENDED (it stopped by itself)

A stop of a running kernel asks it to shut down as a client would
(``shutdown_request`` on its own control channel), so it runs its exit
handlers; a kernel busy running code only gets to them once the code stops,
so if its loop has not ended shortly it is interrupted (an idle kernel
ignores that); one whose loop still has not ended, or whose exit handlers
hang, is ended with ``os._exit``.
"""

from __future__ import annotations

import enum
import logging
import os
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("gateway.launcher")

BUSY_CHECK_SECONDS = 1.0
"""How long a kernel asked to shut down may take before it is taken to be busy and interrupted."""
SHUTDOWN_GRACE_SECONDS = 5.0
"""How long an interrupted kernel may take to end its loop."""
TERMINATE_GRACE_SECONDS = 3.0
"""How long a kernel whose loop ended may take running its exit handlers."""


class Phase(enum.Enum):
    STARTING = "starting"
    """The kernel is being imported and set up."""
    RUNNING = "running"
    """The kernel's loop runs in the main thread."""
    STOPPING = "stopping"
    """A stop was asked for: the kernel is being stopped, or will not start."""
    ENDED = "ended"
    """The kernel's loop has returned (or never ran): the process is exiting."""


ALLOWED = {
    Phase.STARTING: {Phase.RUNNING, Phase.STOPPING},
    Phase.RUNNING: {Phase.STOPPING, Phase.ENDED},
    Phase.STOPPING: {Phase.ENDED},
    Phase.ENDED: set(),
}


def signal_kernel(signum: int) -> None:
    """Send ``signum`` to the kernel (called for each accepted comm request; 0 is a probe and sends nothing).

    When this process leads its process group (a pod's process does, as do
    kernels started by jupyter_client), the whole group gets it, as
    ipykernel's own interrupts do: an interrupt also reaches what the kernel
    runs (``!sleep 60``).  Otherwise only this process does.
    """
    if not signum:
        return
    pid = os.getpid()
    try:
        if os.getpgid(0) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


class KernelLife:
    """The in-process kernel's phase (created by :func:`gateway.launcher.inprocess.run`, one per process).

    ``connection_info`` gives the kernel's control port and key, for the shutdown request.
    """

    def __init__(self, connection_info: Mapping[str, Any]) -> None:
        self._info = dict(connection_info)
        self._phase = Phase.STARTING
        self._status = 0
        self._lock = threading.Lock()
        self._ended = threading.Event()

    @property
    def phase(self) -> Phase:
        return self._phase

    def _move(self, to: Phase) -> Phase | None:
        """Move to ``to`` if allowed; returns the phase left, or ``None`` (caller holds the lock)."""
        left = self._phase
        if to not in ALLOWED[left]:
            return None
        self._phase = to
        return left

    def begin(self) -> bool:
        """Called by the main thread with the kernel set up, right before running its loop.

        ``False`` when a stop came first: the loop must not run.
        """
        with self._lock:
            return self._move(Phase.RUNNING) is not None

    def end(self) -> int:
        """Called by the main thread once the kernel's loop returned (or never ran); returns the exit status.

        0 when the kernel stopped by itself or on request, 1 when the payload could not be delivered.
        """
        with self._lock:
            self._move(Phase.ENDED)
            status = self._status
        self._ended.set()
        return status

    def stop(self, status: int = 0) -> None:
        """Stop the kernel, and exit with ``status`` (called by the comm port, SIGTERM and a failed delivery).

        From any thread but the main one (which may hold the lock); a second stop changes nothing.
        """
        with self._lock:
            left = self._move(Phase.STOPPING)
            if left is None:
                return
            self._status = status
        if left is Phase.RUNNING:
            threading.Thread(target=self._stop_running, name="kernel-stop", daemon=True).start()
        else:
            log.info("stop requested before the kernel started: it will not start")

    def stop_from_signal(self, signum: int, _frame: object) -> None:
        """The SIGTERM handler (installed by the main thread): a stop, asked from a thread of its own."""
        threading.Thread(target=self.stop, name="kernel-stop-request", daemon=True).start()

    def _stop_running(self) -> None:
        try:
            _request_shutdown(self._info)
        except Exception as exc:  # the interrupt and the deadline below still stop the kernel
            log.warning("could not ask the kernel to shut down: %s", exc)
        if not self._ended.wait(BUSY_CHECK_SECONDS):
            log.info("kernel has not stopped; interrupting it")
            signal_kernel(signal.SIGINT)
            if not self._ended.wait(SHUTDOWN_GRACE_SECONDS):
                log.warning("kernel ignored the shutdown request and the interrupt: exiting")
                _exit_now(self._status)
        # The loop ended: the main thread runs the exit handlers, and the process normally exits meanwhile.
        time.sleep(TERMINATE_GRACE_SECONDS)  # the exit handlers' grace period, not a state wait
        log.warning("kernel exit handlers did not finish within %gs: exiting", TERMINATE_GRACE_SECONDS)
        _exit_now(self._status)


def _request_shutdown(info: Mapping[str, Any]) -> None:
    """Send ``shutdown_request`` to the kernel's own control channel, as a client would.

    zmq and jupyter_client's Session are loaded by the running kernel already.
    """
    import zmq
    from jupyter_client.session import Session

    host = "127.0.0.1" if info["ip"] in ("", "0.0.0.0") else info["ip"]
    session = Session(key=info["key"].encode("ascii"), signature_scheme=info["signature_scheme"])
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    try:
        sock.connect(f"tcp://{host}:{info['control_port']}")
        session.send(sock, "shutdown_request", {"restart": False})
    finally:
        sock.close(linger=int(BUSY_CHECK_SECONDS * 1000))  # the request is queued: let it go out
        context.term()


def _exit_now(status: int) -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(status)
