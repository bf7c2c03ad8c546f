"""One pod on the simulated node: its containers as processes, its status, its deletion.

The node agent (``fakes.node.kubelet.NodeAgent``) creates a :class:`PodWorker` for
each pod bound to its node and feeds it every change the pod watch delivers.
The worker plays the kubelet's pod worker and runtime manager for that pod
(pkg/kubelet/pod_workers.go, pkg/kubelet/kuberuntime/kuberuntime_manager.go):

* sets the pod's sandbox up (hostname, ``/etc/hosts``, service-account files:
  ``fakes.node.sandbox``), or reports ``FailedMount`` and retries;
* pulls (resolves) each container's image, or reports ``ErrImagePull`` then
  ``ImagePullBackOff`` and retries with back-off;
* builds the environment, starts the process, reports it running, and ready once its
  readiness probe passes (``fakes.node.probes``); a failing liveness probe restarts it;
* on exit reports the terminated state and restarts it as ``restartPolicy``
  says, with the kubelet's ``CrashLoopBackOff`` back-off;
* when the pod gets a ``deletionTimestamp``: SIGTERM, SIGKILL after the grace
  period, a final terminal status, then the delete with grace period 0 that
  lets the API server remove it (pkg/kubelet/status/status_manager.go).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from fakes.node import podstatus as ps
from fakes.node.containers import START_ERROR_EXIT_CODE, ContainerProcess, StartFailure
from fakes.node.context import API_TIMEOUT, LOST_CONTAINER_MESSAGE, OOM_ANNOTATION, NodeContext
from fakes.node.images import image_id, parse_image
from fakes.node.podenv import ContainerConfigError, container_env, expand_argv, pod_hostname, process_env
from fakes.node.probes import ContainerProbes
from fakes.node.sandbox import PodSandbox, SandboxError
from gateway.aio import OwnedTasks, cancel_and_wait
from gateway.cluster.interface import ClusterError, NotFound, Obj, PatchType
from gateway.cluster.resources import TERMINAL_POD_PHASES

log = logging.getLogger(__name__)

def _format_pod(pod: Obj) -> str:
    """``name_namespace(uid)``, as the kubelet names a pod in messages (pkg/kubelet/util/format)."""
    meta = pod["metadata"]
    return f"{meta['name']}_{meta['namespace']}({meta.get('uid', '')})"


class PodWorker:
    """Runs one pod; :meth:`update` and :meth:`removed` are called by the node agent's watch loop."""

    def __init__(self, ctx: NodeContext, pod: Obj, pod_ip: str | None) -> None:
        self.ctx = ctx
        self.pod = pod
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta.get("uid", "")
        self.pod_ip = pod_ip
        self.pod_dir = ctx.work_dir / "pods" / f"{self.namespace}_{self.name}_{self.uid}"
        self.processes: dict[str, ContainerProcess] = {}
        self.exec_env: dict[str, tuple[dict[str, str], Path]] = {}
        """Each started container's environment and working directory, which ``kubectl exec`` runs commands with."""
        self.terminating = asyncio.Event()  # deletion requested (or the node is stopping)
        self.hurry = asyncio.Event()  # kill now: grace period cut short, pod gone, or node stopping
        self.finished = asyncio.Event()  # every container is done and the final status written
        self.gone = False  # the pod no longer exists (or the node stops): no more API writes
        self.grace_seconds = 30.0
        self._status: dict[str, Any] = dict(pod.get("status") or {})
        self._start_time = self._status.get("startTime") or ps.now()
        self._publish_lock = asyncio.Lock()
        self._kill_task: asyncio.Task[None] | None = None
        self._tasks = OwnedTasks(f"pod {self.namespace}/{self.name}")
        self._pull_failures: dict[str, int] = {}
        self._oom_seen: str | None = None
        self._oom_pending = False  # an OOM kill asked for before any container ran
        spec = pod.get("spec", {})
        self.init_containers: list[Obj] = spec.get("initContainers") or []
        self.containers: list[Obj] = spec.get("containers") or []
        self.records = [self._record_for(c, init=True) for c in self.init_containers]
        self.records += [self._record_for(c) for c in self.containers]
        self.sandbox = PodSandbox(ctx, pod, pod_ip, pod_hostname(pod), self.pod_dir)
        self._token_task: asyncio.Task[None] | None = None
        self.task = asyncio.create_task(self._run(), name=f"pod {self.namespace}/{self.name}")

    # ---------------------------------------------------------------- called by the node agent

    def update(self, pod: Obj) -> None:
        """A newer version of the pod arrived: start termination when it is being deleted; apply a new
        :data:`OOM_ANNOTATION` value."""
        self.pod = pod
        meta = pod["metadata"]
        oom = (meta.get("annotations") or {}).get(OOM_ANNOTATION)
        if oom and oom != self._oom_seen:
            self._oom_seen = oom
            self._oom_pending = not self.oom_kill()
        if meta.get("deletionTimestamp"):
            grace = float(meta.get("deletionGracePeriodSeconds") or 0)
            self._begin_termination(grace)

    def removed(self) -> None:
        """The pod is gone from the API (DELETED): kill its processes at once, write nothing."""
        self.gone = True
        self._begin_termination(0)

    async def shutdown(self, grace_seconds: float) -> None:
        """The node stops: terminate the containers (SIGTERM, SIGKILL after ``grace_seconds``), write nothing."""
        self.gone = True
        self._begin_termination(grace_seconds)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until every process and task of this worker has ended."""
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        if self._kill_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._kill_task
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def oom_kill(self, container: str | None = None) -> bool:
        """Kill a running container as the OOM killer would; ``False`` when none is running."""
        names = [container] if container else list(self.processes)
        hit = False
        for name in names:
            proc = self.processes.get(name)
            if proc is not None and proc.returncode is None:
                proc.oom_kill()
                hit = True
        return hit

    def _find(self, container: str | None) -> ps.ContainerRecord | None:
        """The record of ``container``; the first regular container when ``None``."""
        for record in self.records:
            if record.name == container or (container is None and not record.init):
                return record
        return None

    def log_path(self, container: str | None) -> Path | None:
        """The log file ``kubectl logs`` shows for ``container``: the current attempt's, or while the
        container waits to restart, the last one's (the kubelet's validateContainerLogStatus)."""
        record = self._find(container)
        if record is None:
            return None
        attempt = record.restart_count
        if "waiting" in record.state and "terminated" in record.last_state:
            attempt -= 1
        return self._log_file(record.name, max(0, attempt))

    def container_state(self, container: str | None) -> tuple[str, dict[str, Any]] | None:
        """``(name, state)`` of a container, for the log reader's error messages."""
        record = self._find(container)
        return (record.name, record.state) if record is not None else None

    # ---------------------------------------------------------------- lifecycle

    def _record_for(self, container: Obj, init: bool = False) -> ps.ContainerRecord:
        """A record for ``container``, carrying over what an earlier node agent reported for it."""
        image = container.get("image", "")
        try:
            shown = parse_image(image).normalized
        except ValueError:
            shown = image
        record = ps.ContainerRecord(name=container["name"], image=shown, init=init)
        if not init and self.init_containers:
            record.set_waiting(ps.POD_INITIALIZING)
        for old in self._status.get("initContainerStatuses" if init else "containerStatuses") or []:
            if old.get("name") == record.name:
                record.restart_count = int(old.get("restartCount") or 0)
                record.last_state = old.get("lastState") or {}
                record.container_id = old.get("containerID", "")
                if "running" in (old.get("state") or {}):
                    # Its process died with the previous agent: report it as the kubelet reports a lost container.
                    started = old["state"]["running"].get("startedAt")
                    record.set_terminated(137, ps.CONTAINER_STATUS_UNKNOWN, started_at=started,
                                          message=LOST_CONTAINER_MESSAGE)
                elif "terminated" in (old.get("state") or {}):
                    record.state = old["state"]
        return record

    def _log_file(self, name: str, attempt: int) -> Path:
        # The kubelet's layout: /var/log/pods/<ns>_<pod>_<uid>/<container>/<attempt>.log
        return self.pod_dir / "logs" / name / f"{attempt}.log"

    async def _run(self) -> None:
        try:
            if self._status.get("phase") not in TERMINAL_POD_PHASES:
                await self._publish()
                init_records, records = self.records[: len(self.init_containers)], self.records[len(self.init_containers):]
                initialized = await self._mount_volumes()
                for rec, container in zip(init_records, self.init_containers, strict=True):
                    if not initialized:
                        break
                    # Init containers run one at a time, each to success (pkg/kubelet/kuberuntime computeInitContainerActions).
                    initialized = await self._run_container(rec, container)
                if initialized:
                    runners = [self._tasks.spawn(self._run_container(r, c), r.name) for r, c in zip(records, self.containers, strict=True)]
                    await asyncio.gather(*runners)
                await self._publish(final=True)
            if not self.gone:
                await self.terminating.wait()
                await self._publish(final=True)
                await self._delete()
        finally:
            if any(p.returncode is None for p in self.processes.values()):  # only after an unexpected error
                self.gone = True
                self._begin_termination(0)
                await self._kill_all()
            if self._token_task is not None:
                await cancel_and_wait(self._token_task)
            await self.sandbox.remove()
            self.finished.set()

    async def _mount_volumes(self) -> bool:
        """Set the pod's sandbox up before its first container, retrying with back-off as the kubelet's
        volume manager does; ``False`` when the pod ends first."""
        failures = 0
        while not self.terminating.is_set():
            try:
                await self.sandbox.prepare()
            except SandboxError as err:
                failures += 1
                await self.ctx.record(self.pod, None, "Warning", "FailedMount", str(err))
                await self._pause(self.ctx.backoff.delay(failures))
                continue
            self._token_task = self._tasks.spawn(self.sandbox.keep_token_fresh(), "service account token")
            return True
        return False

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less when the pod starts terminating."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.terminating.wait(), timeout=seconds)

    async def _run_container(self, rec: ps.ContainerRecord, container: Obj) -> bool:
        """One container's life: pull, start, wait, restart per ``restartPolicy``, until the pod ends.

        An init container runs until it succeeds (restarted on failure unless the policy is
        ``Never``); the result says whether it did.
        """
        policy = self.pod.get("spec", {}).get("restartPolicy", "Always")
        crashes = 0
        resumed = rec.terminated is not None  # a container lost or finished under an earlier agent
        while not self.terminating.is_set():
            if resumed:
                resumed = False
                exit_code = int(rec.terminated.get("exitCode", 0)) if rec.terminated else 0
                run_seconds = 0.0
            else:
                outcome = await self._attempt(rec, container)
                if outcome is None:
                    continue  # not started (image or config problem), retried after a back-off
                exit_code, run_seconds = outcome
                await self._publish()
            if self.terminating.is_set():
                return False
            if rec.init and exit_code == 0:
                return True
            if policy == "Never" or (policy == "OnFailure" and exit_code == 0):
                return exit_code == 0
            # The kubelet restarts at once after a first exit, then backs off 10s, 20s, ...; a container
            # that ran for twice the maximum back-off starts over (flowcontrol.Backoff GC).
            crashes = 1 if run_seconds > 2 * self.ctx.backoff.maximum else crashes + 1
            rec.begin_restart()
            if crashes > 1:
                delay = self.ctx.backoff.delay(crashes - 1)
                rec.set_waiting(
                    ps.CRASH_LOOP_BACKOFF,
                    f"back-off {_duration(delay)} restarting failed container={rec.name} pod={_format_pod(self.pod)}",
                )
                await self.ctx.record(self.pod, rec.field_path, "Warning", "BackOff",
                                      f"Back-off restarting failed container {rec.name} in pod {_format_pod(self.pod)}")
                await self._publish()
                await self._pause(delay)
        return False

    async def _attempt(self, rec: ps.ContainerRecord, container: Obj) -> tuple[int, float] | None:
        """Pull and run the container once; ``(exit code, seconds it ran)``, or ``None`` when it never started."""
        image = container.get("image", "")
        spec = self.ctx.images.resolve(image)
        if spec is None:
            await self._pull_failed(rec, image)
            return None
        await self.ctx.record(self.pod, rec.field_path, "Normal", "Pulled", f'Container image "{image}" already present on machine')
        rec.image_id = image_id(image)
        try:
            kubelet_env = await container_env(
                self.ctx.cluster, self.pod, container, pod_ip=self.pod_ip, host_ip=self.ctx.host_ip,
                api_server_url=self.ctx.api_server_url, node_allocatable=self.ctx.allocatable,
            )
        except ContainerConfigError as err:
            rec.set_waiting(ps.CREATE_CONTAINER_CONFIG_ERROR, str(err))
            await self.ctx.record(self.pod, rec.field_path, "Warning", "Failed", f"Error: {err}")
            await self._publish()
            await self._pause(self.ctx.backoff.initial)
            return None
        command = expand_argv(container.get("command") or [], kubelet_env) or None
        args = expand_argv(container.get("args") or [], kubelet_env) or None
        argv = spec.argv(command, args)
        env = self.sandbox.container_env(process_env(spec.env, pod_hostname(self.pod), kubelet_env))
        cwd = Path(container.get("workingDir") or spec.working_dir or self.pod_dir / "root")
        cid = ps.container_id(self.uid, rec.name, rec.restart_count)
        if self.terminating.is_set():
            return None
        await self.ctx.record(self.pod, rec.field_path, "Normal", "Created", f"Created container: {rec.name}")
        loop = asyncio.get_running_loop()
        wrap = (lambda argv: self.sandbox.command(argv, env, rec.name)) if self.sandbox.isolated else None
        try:
            proc = await ContainerProcess.start(argv, env, cwd, self._log_file(rec.name, rec.restart_count), wrap=wrap)
        except StartFailure as err:
            rec.container_id = cid
            rec.set_terminated(START_ERROR_EXIT_CODE, ps.START_ERROR, started_at="1970-01-01T00:00:00Z", message=str(err))
            await self.ctx.record(self.pod, rec.field_path, "Warning", "Failed", f"Error: {err}")
            return START_ERROR_EXIT_CODE, 0.0
        self.processes[rec.name] = proc
        self.exec_env[rec.name] = (env, cwd)
        started = loop.time()
        rec.set_running(ps.now(), cid)
        rec.probe_ready = False if container.get("readinessProbe") else None
        probers: list[asyncio.Task[None]] = []
        if self.terminating.is_set():
            self._kill(proc, rec.name)
        elif self._oom_pending:
            self._oom_pending = False
            proc.oom_kill()
        else:
            await self.ctx.record(self.pod, rec.field_path, "Normal", "Started", f"Started container {rec.name}")
            await self._publish()
            probers = ContainerProbes(
                self.pod, rec, proc, container, self.pod_ip, record_event=self.ctx.record, publish=self._publish,
                hurry=self.hurry, exec_env=env, exec_argv=lambda command: self.sandbox.command(command, env, rec.name),
                exec_cwd=cwd,
            ).start(self._tasks)
        try:
            code = await proc.wait()
        finally:
            for prober in probers:
                await cancel_and_wait(prober)
        started_at = rec.state.get("running", {}).get("startedAt")
        rec.set_terminated(code, ps.exit_reason(code, proc.oom_killed), started_at=started_at)
        if proc.oom_killed:
            await self.ctx.record(self.pod, rec.field_path, "Warning", "OOMKilling",
                                  f"Memory cgroup out of memory: Killed process {proc.pid} of container {rec.name}")
        return code, loop.time() - started

    async def _pull_failed(self, rec: ps.ContainerRecord, image: str) -> None:
        """Report a failed pull as the kubelet's image manager does (pkg/kubelet/images/image_manager.go),
        then wait out the pull back-off."""
        ref = parse_image(image).normalized if image else image
        reason = (f'failed to pull and unpack image "{ref}": failed to resolve reference "{ref}": '
                  f"{ref}: not found")
        message = f"rpc error: code = NotFound desc = {reason}"
        failures = self._pull_failures.get(rec.name, 0) + 1
        self._pull_failures[rec.name] = failures
        await self.ctx.record(self.pod, rec.field_path, "Normal", "Pulling", f'Pulling image "{image}"')
        await self.ctx.record(self.pod, rec.field_path, "Warning", "Failed", f'Failed to pull image "{image}": {message}')
        await self.ctx.record(self.pod, rec.field_path, "Warning", "Failed", "Error: ErrImagePull")
        rec.set_waiting(ps.ERR_IMAGE_PULL, message)
        await self._publish()
        delay = self.ctx.backoff.delay(failures)
        await self._pause(min(self.ctx.backoff.resync, delay))
        if self.terminating.is_set():
            return
        back_off = f'Back-off pulling image "{image}"'
        rec.set_waiting(ps.IMAGE_PULL_BACKOFF, f"{back_off}: ErrImagePull: {message}")
        await self.ctx.record(self.pod, rec.field_path, "Normal", "BackOff", back_off)
        await self.ctx.record(self.pod, rec.field_path, "Warning", "Failed", "Error: ImagePullBackOff")
        await self._publish()
        await self._pause(max(0.0, delay - self.ctx.backoff.resync))

    # ---------------------------------------------------------------- termination

    def _begin_termination(self, grace_seconds: float) -> None:
        if self.terminating.is_set():
            if grace_seconds < self.grace_seconds:  # a second delete may shorten the grace period, never lengthen it
                self.grace_seconds = grace_seconds
                self.hurry.set()
            return
        self.grace_seconds = grace_seconds
        if grace_seconds <= 0:
            self.hurry.set()
        self.terminating.set()
        self._kill_task = asyncio.create_task(self._kill_all(), name=f"kill {self.namespace}/{self.name}")

    async def _kill_all(self) -> None:
        tasks = [self._kill(proc, name) for name, proc in list(self.processes.items()) if proc.returncode is None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _kill(self, proc: ContainerProcess, name: str) -> asyncio.Task[None]:
        """Stop one container: the kubelet's killContainer (Killing event, SIGTERM, SIGKILL after the grace period)."""
        if not self.gone:
            record = self._find(name)
            field_path = record.field_path if record is not None else None
            self._tasks.spawn(self.ctx.record(self.pod, field_path, "Normal", "Killing", f"Stopping container {name}"))
        return proc.terminate(self.grace_seconds, self.hurry)

    async def _delete(self) -> None:
        """Let the API server remove the pod now that its containers are stopped (status manager's final delete).

        The kubelet deletes with a UID precondition, so that a newer pod of the same name is never
        hit (pkg/kubelet/status/status_manager.go); the cluster interface has no preconditions, so
        a pod already gone is left alone and the uid is checked first.
        """
        if self.gone:
            return
        try:
            current = await asyncio.wait_for(self.ctx.cluster.get("pods", self.name, namespace=self.namespace),
                                             timeout=API_TIMEOUT)
            if current["metadata"].get("uid") != self.uid:
                return
            await asyncio.wait_for(
                self.ctx.cluster.delete("pods", self.name, namespace=self.namespace, grace_period_seconds=0),
                timeout=API_TIMEOUT,
            )
        except NotFound:
            pass
        except (ClusterError, asyncio.TimeoutError) as err:
            log.warning("could not delete pod %s/%s: %s", self.namespace, self.name, err)

    # ---------------------------------------------------------------- status

    async def _publish(self, final: bool = False) -> None:
        """Write the pod's status (the status manager's sync); ``final`` marks the pod terminal when it is deleted."""
        if self.gone:
            return
        async with self._publish_lock:
            if self.gone:
                return
            base = dict(self.pod)
            base["status"] = self._status
            status = ps.pod_status(
                base, self.records, pod_ip=self.pod_ip, host_ip=self.ctx.host_ip, start_time=self._start_time,
                pod_is_terminal=final and self.terminating.is_set(),
            )
            if status == self._status:
                return
            try:
                await asyncio.wait_for(
                    self.ctx.cluster.patch("pods", self.name, {"status": status}, namespace=self.namespace,
                                           patch_type=PatchType.MERGE, subresource="status"),
                    timeout=API_TIMEOUT,
                )
                self._status = status  # only once written: a failed write is retried by the next sync
            except NotFound:
                self.gone = True
                self._begin_termination(0)
            except (ClusterError, asyncio.TimeoutError) as err:
                log.warning("could not update status of pod %s/%s: %s", self.namespace, self.name, err)


def _duration(seconds: float) -> str:
    """Go's time.Duration formatting for whole seconds and minutes (``10s``, ``5m0s``)."""
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
