"""``GET /containerLogs/{namespace}/{pod}/{container}``: a container's log as the kubelet serves it.

A real API server answers ``pods/log`` by proxying to this path of the pod's node
(``pkg/registry/core/pod/strategy.go`` ``LogLocation``), with the ``PodLogOptions`` as query
parameters: ``follow``, ``previous``, ``timestamps``, ``sinceSeconds`` or ``sinceTime``,
``tailLines``, ``limitBytes`` and ``stream``.  The kubelet checks them
(``pkg/kubelet/server/server.go`` ``getContainerLogs``: 400 for a query it cannot decode, 422
for invalid options, 404 for a pod or container it does not know) and reads the log of the
container's current attempt, or of the one before with ``previous``
(``pkg/kubelet/kubelet_pods.go`` ``validateContainerLogStatus``, whose messages the errors carry).

A container's output reaches its log file without passing through this process, so no line has
a time of its own: ``timestamps`` and ``since*`` take what was in the file when the request came
as written at the file's modification time, and what a follow reads later as written when read.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

from fakes.node.podworker import PodWorker
from fakes.node.streaming import NodeStreaming
from gateway.cluster.interface import BadRequest, Invalid, NotFound

STREAMS = ("All",)
"""``stream`` values served: stdout and stderr share one file here, so only both together."""


@dataclass(frozen=True)
class LogOptions:
    """The ``PodLogOptions`` of one request; ``since`` in seconds since the epoch."""

    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    since: float | None = None
    tail_lines: int | None = None
    limit_bytes: int | None = None


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true"):
        return True
    if value.lower() in ("", "0", "false"):
        return False
    raise ValueError(value)


def parse_options(query: dict[str, str]) -> LogOptions:
    """The options of a ``/containerLogs`` query (its last value of each parameter).

    :class:`BadRequest` ``Unable to decode query.`` or :class:`Invalid` as the kubelet answers.
    """
    if "tail" in query:  # the kubelet's older name; "all" means no limit
        query = {**query, "tailLines": query["tail"]} if query["tail"] != "all" else \
            {k: v for k, v in query.items() if k != "tailLines"}
    try:
        since_seconds = int(query["sinceSeconds"]) if "sinceSeconds" in query else None
        since_time = (datetime.datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00")).timestamp()
                      if "sinceTime" in query else None)
        options = LogOptions(
            follow=_flag(query.get("follow", "")), previous=_flag(query.get("previous", "")),
            timestamps=_flag(query.get("timestamps", "")),
            since=since_time if since_seconds is None else time.time() - since_seconds,
            tail_lines=int(query["tailLines"]) if "tailLines" in query else None,
            limit_bytes=int(query["limitBytes"]) if "limitBytes" in query else None,
        )
    except ValueError:
        raise BadRequest('{"message": "Unable to decode query."}') from None
    invalid = ((since_seconds is not None and since_seconds < 1) or (since_seconds is not None and "sinceTime" in query)
               or (options.tail_lines is not None and options.tail_lines < 0)
               or (options.limit_bytes is not None and options.limit_bytes < 1))
    if invalid:
        raise Invalid('{"message": "Invalid request."}')
    stream = query.get("stream", "All")
    if stream not in STREAMS:
        raise BadRequest(f'unable to return the given log stream: "{stream}": this node keeps stdout and stderr '
                         "in one log")
    return options


def log_file(worker: PodWorker | None, namespace: str, pod: str, container: str, previous: bool) -> Path:
    """The file of the container's current (or previous) attempt; the kubelet's errors when there is none."""
    if worker is None:
        raise NotFound(f'pod "{pod}" does not exist')
    spec = worker.pod.get("spec") or {}
    declared = [c.get("name") for key in ("containers", "initContainers", "ephemeralContainers")
                for c in spec.get(key) or []]
    record = next((r for r in worker.records if r.name == container), None)
    path = worker.log_path(container)
    if container not in declared or record is None or path is None:
        raise NotFound(f'container "{container}" not found in pod "{pod}"')
    if previous:
        if "terminated" not in record.last_state or record.restart_count < 1:
            raise BadRequest(f'previous terminated container "{container}" in pod "{pod}" not found')
        # The node's layout keeps one file per attempt (<container>/<attempt>.log), as the kubelet does.
        return path.parent / f"{record.restart_count - 1}.log"
    if "waiting" in record.state and not path.exists():
        reason = record.state["waiting"].get("reason", "ContainerCreating")
        raise BadRequest(f'container "{container}" in pod "{pod}" is waiting to start: {reason}')
    return path


class _Shaper:
    """Applies ``timestamps``, ``since`` and ``limitBytes`` to the log's bytes as they are served."""

    def __init__(self, options: LogOptions) -> None:
        self.options = options
        self._left = options.limit_bytes
        self._line_start = True

    @property
    def done(self) -> bool:
        return self._left is not None and self._left <= 0

    def shape(self, data: bytes, written_at: float) -> bytes:
        if self.options.since is not None and written_at < self.options.since:
            return b""
        if self.options.timestamps:
            stamp = _rfc3339_nano(written_at).encode() + b" "
            out = bytearray()
            for line in data.splitlines(keepends=True):
                if self._line_start:
                    out += stamp
                out += line
                self._line_start = line.endswith(b"\n")
            data = bytes(out)
        if self._left is not None:
            data = data[:self._left]
            self._left -= len(data)
        return data


def _rfc3339_nano(when: float) -> str:
    stamp = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond * 1000:09d}Z"


def _read(path: Path, tail_lines: int | None) -> tuple[bytes, float]:
    """The log (its last ``tail_lines`` lines) and its modification time (a worker thread's read)."""
    try:
        data = path.read_bytes()
        written_at = path.stat().st_mtime
    except FileNotFoundError:
        return b"", time.time()
    if tail_lines is not None:
        data = b"".join(data.splitlines(keepends=True)[-tail_lines:]) if tail_lines else b""
    return data, written_at


async def container_log(streaming: NodeStreaming, worker: PodWorker | None, namespace: str, pod: str,
                        container: str, options: LogOptions) -> AsyncGenerator[bytes, None]:
    """The log the request asks for, in chunks; with ``follow``, until the container has exited.

    Called by the kubelet API's ``/containerLogs`` handler (``fakes.node.kubeletapi``); the
    errors of :func:`log_file` are raised before the first chunk.
    """
    path = log_file(worker, namespace, pod, container, options.previous)
    shaper = _Shaper(options)
    if not options.follow or options.previous:
        data, written_at = await asyncio.to_thread(_read, path, options.tail_lines)
        shaped = shaper.shape(data, written_at)
        if shaped:
            yield shaped
        return
    _, modified = await asyncio.to_thread(_read, path, 0)
    first = True
    async for chunk in streaming.follow_log(namespace, pod, container, options.tail_lines):
        shaped = shaper.shape(chunk, modified if first else time.time())
        first = False
        if shaped:
            yield shaped
        if shaper.done:
            return
