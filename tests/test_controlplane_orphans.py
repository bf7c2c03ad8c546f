"""A test run killed outright leaves no control-plane component running (``e2e.kube.launcher``).

A CI job's timeout or a ``kill -9`` ends the process that started the real control plane without its
teardown; each component it started (etcd, the API server, the node agent and the pods it runs) must
then end instead of running on with its ports and its pods: the node agent with SIGTERM, so that it
stops its pods, the others with SIGKILL.  The component here is a stand-in process started the way
every component is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")

ROOT = Path(__file__).resolve().parent.parent
WAIT_SECONDS = 30.0

COMPONENT = """
import signal, sys, time
def stop(*_):
    print("stopped by SIGTERM", file=sys.stderr, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("up", flush=True)
time.sleep(600)
"""

STARTER = """
import sys, time
from pathlib import Path
from e2e.kube.launcher import _Process
component = _Process("component", [sys.executable, "-c", sys.argv[1]], Path(sys.argv[2]), pipe_stdout=True,
                     parent_death_signal=int(sys.argv[3]))
component.await_line("up", 30)
print(component.popen.pid, flush=True)
time.sleep(600)
"""


async def exited(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` (not a child of ours) ends within ``timeout`` seconds, by its pidfd."""
    pidfd = os.pidfd_open(pid)  # readable once the process has exited
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()
    loop.add_reader(pidfd, lambda: gone.done() or gone.set_result(None))
    try:
        await asyncio.wait_for(gone, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
async def test_a_component_ends_with_its_signal_when_the_run_that_started_it_is_killed(tmp_path: Path,
                                                                                      signum: int) -> None:
    starter = await asyncio.create_subprocess_exec(
        sys.executable, "-c", STARTER, COMPONENT, str(tmp_path), str(int(signum)), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE)
    assert starter.stdout is not None
    component = 0
    try:
        component = int(await asyncio.wait_for(starter.stdout.readline(), WAIT_SECONDS))
        starter.kill()  # no teardown runs
        await starter.wait()
        assert await exited(component, WAIT_SECONDS), "the component outlived the run that started it"
    finally:
        if starter.returncode is None:
            starter.kill()
            await starter.wait()
        if component:
            with contextlib.suppress(ProcessLookupError):
                os.kill(component, signal.SIGKILL)
    assert ("stopped by SIGTERM" in (tmp_path / "component.log").read_text()) == (signum == signal.SIGTERM)
