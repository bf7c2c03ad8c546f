"""What the kernel-service state machine watches: each replica's view, the cluster as its administrator, pod births.

* :class:`ReplicaView`: one replica's kernel service, awaitable: ``await view.until(check, timeout)``
  re-checks ``check`` whenever a kernel of that replica changes state or the replica adopts or
  starts one, so "every live kernel visible from every live replica" is awaited, never slept for.
* :class:`Observer`: the administrator's connection to the simulated store, outside the faults the
  machine injects (those are the gateway's troubles, not the test's eyes).
* :class:`PodLedger`: every kernel pod the cluster ever showed, by kernel, in order of creation, so a
  pod death restarted twice (two replicas each relaunching it) is seen even if one pod lived briefly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fakes.memory import MemoryCluster
from gateway.cluster.informer import Informer
from gateway.kernels.kernel import Kernel
from gateway.kernels.service import KernelService
from gateway.objects.labels import KERNEL_ID_LABEL


class ReplicaView:
    """One replica's kernel service, with a wake-up at every change of what it serves.

    The service tells nobody when its record follower adopts a kernel, so the view wraps the
    service's kernel hook (called for every kernel it starts or adopts) to listen to each new
    kernel's states; a kernel let go, restarted elsewhere or gone changes state too.
    """

    def __init__(self, name: str, service: KernelService) -> None:
        self.name = name
        self.service = service
        self._changed = asyncio.Event()
        hook = service._hook

        def hooked(kernel: Kernel) -> None:
            hook(kernel)
            self._follow(kernel)

        # Starts call ``self._hook``; the follower was given the bound method when the service was built.
        service._hook = hooked  # type: ignore[method-assign]
        service._follower._on_adopted = hooked
        for kernel in list(service._kernels.values()):
            self._follow(kernel)

    def _follow(self, kernel: Kernel) -> None:
        kernel.add_listener(self._heard)
        self._changed.set()

    def _heard(self, kernel: Kernel, state: str) -> None:
        self._changed.set()

    async def until(self, check: Callable[[], Any], timeout: float, what: str) -> None:
        """Return once ``check()`` is truthy (checked now and after every change); fail with ``what`` after ``timeout``."""
        async def reached() -> None:
            while True:
                self._changed.clear()
                if check():
                    return
                await self._changed.wait()

        try:
            await asyncio.wait_for(reached(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"replica {self.name}: {what} not reached within {timeout}s") from None


class Observer(MemoryCluster):
    """The cluster administrator, whose requests no injected fault touches."""

    async def _admit(self, verb: str, rt: Any, namespace: str | None, name: str = "", subresource: str = "") -> None:
        return None


class PodLedger:
    """Uids of every kernel pod the observer's informer saw, per kernel, in order (started and stopped by the machine)."""

    def __init__(self, observer: Observer) -> None:
        self.informer = Informer(observer, "pods", label_selector=KERNEL_ID_LABEL)
        self.uids: dict[str, list[str]] = {}
        self._task: asyncio.Task[None] | None = None
        self._seen: dict[str, asyncio.Future[None]] = {}

    async def start(self) -> None:
        subscription = self.informer.subscribe()
        await self.informer.start()
        for pod in self.informer.items():
            self._saw(pod)
        self._task = asyncio.create_task(self._follow(subscription), name="pod ledger")

    async def stop(self) -> None:
        await self.informer.stop()
        if self._task is not None:
            await self._task

    async def _follow(self, subscription: Any) -> None:
        async with subscription as changes:
            async for event in changes:
                self._saw(event.object)

    def _saw(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uids = self.uids.setdefault(meta["labels"][KERNEL_ID_LABEL], [])
        if meta["uid"] not in uids:
            uids.append(meta["uid"])
        waiter = self._seen.pop(meta["uid"], None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def of(self, kernel_id: str) -> list[str]:
        return list(self.uids.get(kernel_id, []))

    async def seen(self, kernel_id: str, uid: str, timeout: float) -> None:
        """Return once the ledger holds pod ``uid`` of the kernel."""
        if uid in self.uids.get(kernel_id, []):
            return
        waiter = self._seen.setdefault(uid, asyncio.get_running_loop().create_future())
        await asyncio.wait_for(asyncio.shield(waiter), timeout)
