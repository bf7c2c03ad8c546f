"""Readiness and liveness probes of a container on the simulated node, as the kubelet's prober runs them.

The pod worker (``fakes.node.podworker``) starts a :class:`Prober` for each probe of a
running container and stops it when the container exits.  After pkg/kubelet/prober: the
first probe runs ``initialDelaySeconds`` after the start, then one every ``periodSeconds``,
each bounded by ``timeoutSeconds``; the result flips after ``successThreshold`` successes or
``failureThreshold`` failures in a row.  ``httpGet`` (any 2xx or 3xx status), ``tcpSocket``
(the connection opens) and ``exec`` (exit status 0) are supported; a ``grpc`` probe is taken
as passing.  A readiness result sets the container's ``ready``; a liveness failure restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fakes.node.containers import ContainerProcess
from fakes.node.context import EventSink
from fakes.node.podstatus import ContainerRecord
from gateway.aio import OwnedTasks
from gateway.cluster.interface import Obj

log = logging.getLogger(__name__)

USER_AGENT = "kube-probe/1.32"

DEFAULT_GRACE_SECONDS = 30

ProbeResult = Callable[[bool, str], Awaitable[None]]
"""``on_result(passing, message)``: called when the probe's result flips (readiness) or fails for good (liveness)."""


def container_port(container: Obj, port: Any) -> int:
    """A probe's ``port``: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"port {port!r} is not a port of container {container.get('name')}")


class Prober:
    """One probe (``kind``: ``readiness`` or ``liveness``) of one container at ``pod_ip``.

    ``exec_argv(command)`` turns an exec probe's command into the argv to run (in the
    container's sandbox) with ``exec_env``, in ``exec_cwd``.
    """

    def __init__(
        self,
        kind: str,
        probe: Mapping[str, Any],
        container: Obj,
        pod_ip: str,
        on_result: ProbeResult,
        *,
        exec_env: Mapping[str, str] | None = None,
        exec_argv: Callable[[list[str]], list[str]] = list,
        exec_cwd: Path | None = None,
    ) -> None:
        self.kind = kind
        self.probe = probe
        self.container = container
        self.pod_ip = pod_ip
        self._on_result = on_result
        self._exec_env = dict(exec_env or {})
        self._exec_argv = exec_argv
        self._exec_cwd = exec_cwd
        self.period = float(probe.get("periodSeconds") or 10)
        self.timeout = float(probe.get("timeoutSeconds") or 1)
        self.delay = float(probe.get("initialDelaySeconds") or 0)
        self.success_threshold = int(probe.get("successThreshold") or 1)
        self.failure_threshold = int(probe.get("failureThreshold") or 3)

    async def run(self) -> None:
        """Probe until cancelled (the container exited): the kubelet's probe worker loop."""
        await asyncio.sleep(self.delay)
        passing: bool | None = None
        successes = failures = 0
        while True:
            ok, message = await self.probe_once()
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if ok and successes >= self.success_threshold and passing is not True:
                passing = True
                await self._on_result(True, message)
            elif not ok and failures >= self.failure_threshold and passing is not False:
                passing = False
                await self._on_result(False, message)
            elif not ok:
                log.debug("%s probe of %s failed: %s", self.kind, self.container.get("name"), message)
            await asyncio.sleep(self.period)

    async def probe_once(self) -> tuple[bool, str]:
        """One probe: ``(passed, message)``; the message says why it failed, as the kubelet's events do."""
        try:
            if "httpGet" in self.probe:
                return await asyncio.wait_for(self._http(self.probe["httpGet"]), self.timeout)
            if "tcpSocket" in self.probe:
                return await asyncio.wait_for(self._tcp(self.probe["tcpSocket"]), self.timeout)
            if "exec" in self.probe:
                return await self._exec(list(self.probe["exec"].get("command") or []))
        except asyncio.TimeoutError:
            return False, f"{self._target()} timed out after {self.timeout:g}s"
        except (OSError, ValueError) as err:
            return False, f"{self._target()}: {err}"
        return True, ""

    def _target(self) -> str:
        if "httpGet" in self.probe:
            return f'Get "{self._url(self.probe["httpGet"])}"'
        if "tcpSocket" in self.probe:
            spec = self.probe["tcpSocket"]
            return f"dial tcp {spec.get('host') or self.pod_ip}:{spec.get('port')}"
        return "exec"

    def _url(self, spec: Mapping[str, Any]) -> str:
        scheme = str(spec.get("scheme") or "HTTP").lower()
        port = spec.get("port")
        with contextlib.suppress(ValueError):
            port = container_port(self.container, port)
        return f"{scheme}://{spec.get('host') or self.pod_ip}:{port}{spec.get('path') or '/'}"

    async def _http(self, spec: Mapping[str, Any]) -> tuple[bool, str]:
        host = spec.get("host") or self.pod_ip
        port = container_port(self.container, spec.get("port"))
        secure = str(spec.get("scheme") or "HTTP").upper() == "HTTPS"
        context = ssl.create_default_context() if secure else None
        if context is not None:  # the kubelet does not verify a probed pod's certificate
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        try:
            headers = {"Host": f"{host}:{port}", "User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"}
            for header in spec.get("httpHeaders") or []:
                headers[header["name"]] = header.get("value", "")
            request = f"GET {spec.get('path') or '/'} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write((request + "\r\n").encode())
            await writer.drain()
            status_line = (await reader.readline()).decode(errors="replace").split()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        code = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
        if 200 <= code < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {code}"

    async def _tcp(self, spec: Mapping[str, Any]) -> tuple[bool, str]:
        port = container_port(self.container, spec.get("port"))
        _reader, writer = await asyncio.open_connection(spec.get("host") or self.pod_ip, port)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True, ""

    async def _exec(self, command: Sequence[str]) -> tuple[bool, str]:
        proc = await asyncio.create_subprocess_exec(
            *self._exec_argv(list(command)), env=self._exec_env, cwd=self._exec_cwd, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return False, f"command {list(command)!r} timed out"
        if proc.returncode == 0:
            return True, ""
        return False, out.decode(errors="replace").strip() or f"command {list(command)!r} exited with {proc.returncode}"


class ContainerProbes:
    """The probes of one running container, and what their results do (the kubelet's prober manager).

    Started by the pod worker when the container has started; its tasks are cancelled when the
    container exits.  A readiness result sets ``record.probe_ready`` and ``publish``es the pod's
    status; a liveness failure stops the process (SIGTERM, SIGKILL after the grace period, or
    at once when ``hurry`` is set), and the worker restarts it as the restart policy says.
    """

    def __init__(
        self, pod: Obj, record: ContainerRecord, proc: ContainerProcess, container: Obj, pod_ip: str | None, *,
        record_event: EventSink, publish: Callable[[], Awaitable[None]], hurry: asyncio.Event,
        exec_env: Mapping[str, str], exec_argv: Callable[[list[str]], list[str]], exec_cwd: Path,
    ) -> None:
        self.pod, self.record, self.proc, self.container, self.pod_ip = pod, record, proc, container, pod_ip
        self._event, self._publish, self._hurry = record_event, publish, hurry
        self._exec_env, self._exec_argv, self._exec_cwd = exec_env, exec_argv, exec_cwd

    def start(self, tasks: OwnedTasks) -> list[asyncio.Task[None]]:
        """Spawn a task per probe the container declares (none without a pod IP) and return them."""
        if self.pod_ip is None:
            return []
        started = []
        for kind, on_result in (("readiness", self._readiness), ("liveness", self._liveness)):
            probe = self.container.get(f"{kind}Probe")
            if probe:
                prober = Prober(kind, probe, self.container, self.pod_ip, on_result,
                                exec_env=self._exec_env, exec_argv=self._exec_argv, exec_cwd=self._exec_cwd)
                started.append(tasks.spawn(prober.run(), f"{self.record.name} {kind} probe"))
        return started

    async def _readiness(self, passing: bool, message: str) -> None:
        self.record.probe_ready = passing
        if not passing:
            await self._event(self.pod, self.record.field_path, "Warning", "Unhealthy", f"Readiness probe failed: {message}")
        await self._publish()

    async def _liveness(self, passing: bool, message: str) -> None:
        if passing or self.proc.returncode is not None:
            return
        name = self.record.name
        await self._event(self.pod, self.record.field_path, "Warning", "Unhealthy", f"Liveness probe failed: {message}")
        await self._event(self.pod, self.record.field_path, "Normal", "Killing",
                          f"Container {name} failed liveness probe, will be restarted")
        grace = self.container["livenessProbe"].get("terminationGracePeriodSeconds")
        if grace is None:
            grace = (self.pod.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
        self.proc.terminate(float(grace), self._hurry)
