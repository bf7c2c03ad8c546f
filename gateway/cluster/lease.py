"""Leader election over a Lease: the one gateway replica that runs the duties that must happen once.

The composition root (``gateway.app``) makes one :class:`LeaseElector` per gateway, starts it
once the informers have synced and stops it last; the kernel service's duties
(``gateway.kernels.duties``) listen to it.  It follows client-go's leader election
(``tools/leaderelection``) with the Lease rules of :mod:`gateway.cluster.leasestate`:

* a replica **acquires** the Lease when it is absent (create), unheld, or expired (its
  ``renewTime`` plus ``leaseDurationSeconds`` has passed), by replacing it under the
  ``resourceVersion`` it read: of two replicas trying at once, one gets a 409 and waits;
* the **holder renews** it every ``retry_period``; when it cannot renew for ``renew_deadline``
  (shorter than the lease duration) it stops leading before anyone else may take over;
* a replica that does not hold it asks again when the holder's claim would expire (one
  ``get`` per lease duration), not on a fixed poll, so takeover happens within the lease
  duration of the holder's last renewal;
* errors are retried after a jittered back-off (:class:`gateway.aio.Backoff`); every call
  has a timeout;
* :meth:`LeaseElector.stop` releases a held Lease (clears ``holderIdentity``) so the next
  replica takes over at once.

Comparing ``renewTime`` with this replica's clock assumes the replicas' clocks agree to well
within the lease duration, as they do on nodes kept in time (NTP).  The calls are the
renewals only: ``get``, ``create`` and ``update`` of one Lease, per gateway, whatever the
number of kernels.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from gateway.aio import Backoff, OwnedTasks
from gateway.cluster.interface import AlreadyExists, Cluster, ClusterError, Conflict, NotFound
from gateway.cluster.leasestate import LeaseState, held_lease, parse_lease, released_lease

log = logging.getLogger("gateway.cluster.lease")

RELEASE_TIMEOUT = 5.0
"""Bound on releasing the Lease at stop."""
EXPIRY_MARGIN = 0.05
"""Seconds past the holder's expiry at which a waiting replica asks again."""

Clock = Callable[[], datetime]
Listener = Callable[[bool], None]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class LeaseSettings:
    """Which Lease, who this replica is, and client-go's three durations (in seconds)."""

    namespace: str
    identity: str
    name: str = "kernelgate-duties"
    duration: float = 15.0
    """How long a holder's claim lasts after its last renewal (``leaseDurationSeconds``)."""
    renew_deadline: float = 10.0
    """How long a holder goes on leading while its renewals fail."""
    retry_period: float = 2.0
    """How often the holder renews."""

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.duration:
            raise ValueError("a lease needs 0 < retry period < renew deadline < lease duration")


class LeaseElector:
    """Acquires, renews and releases the duties' Lease (see the module docstring)."""

    def __init__(self, cluster: Cluster, settings: LeaseSettings, *, clock: Clock = utcnow,
                 backoff: Backoff | None = None) -> None:
        self._cluster = cluster
        self.settings = settings
        self._clock = clock
        self._backoff = backoff or Backoff(base=settings.retry_period / 2, cap=settings.retry_period * 4)
        self._tasks = OwnedTasks(f"lease {settings.name}")
        self._listeners: list[Listener] = []
        self._leading = False
        self._state: LeaseState | None = None
        self._renewed_at = 0.0
        """``loop.time()`` of the last successful acquisition or renewal."""
        self._stopping = False

    @property
    def identity(self) -> str:
        return self.settings.identity

    @property
    def leading(self) -> bool:
        """Whether this replica holds the Lease (and so runs the duties) now."""
        return self._leading

    def listen(self, listener: Listener) -> None:
        """Call ``listener(leading)`` whenever this replica starts or stops leading (from the elector's task)."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Try once (so a lone gateway leads when this returns), then keep trying or renewing in the background."""
        delay = await self._attempt()
        self._tasks.spawn(self._run(delay), "acquire and renew")

    async def stop(self, *, release: bool = True) -> None:
        """Stop acquiring and renewing; with ``release``, let go of a held Lease so the next replica leads at once."""
        self._stopping = True
        await self._tasks.cancel_all()
        was_leading, state = self._leading, self._state
        self._set_leading(False)
        if release and was_leading and state is not None:
            try:
                await asyncio.wait_for(self._cluster.replace(
                    "leases", self.settings.name,
                    released_lease(self.settings.name, self.settings.namespace, state, now=self._clock()),
                    namespace=self.settings.namespace), RELEASE_TIMEOUT)
                log.info("released the lease %s", self.settings.name)
            except (ClusterError, asyncio.TimeoutError) as error:
                log.warning("could not release the lease %s (%s); it expires on its own",
                            self.settings.name, error or type(error).__name__)

    # ------------------------------------------------------------------ the loop

    async def _run(self, delay: float) -> None:
        while not self._stopping:
            await asyncio.sleep(delay)
            delay = await self._attempt()

    async def _attempt(self) -> float:
        """One acquisition or renewal; returns how long to wait before the next one."""
        loop = asyncio.get_running_loop()
        settings = self.settings
        timeout = settings.renew_deadline
        if self._leading:
            timeout = max(0.1, self._renewed_at + settings.renew_deadline - loop.time())
        try:
            leads = await asyncio.wait_for(self._acquire_or_renew(), timeout)
        except (ClusterError, asyncio.TimeoutError) as error:
            delay = self._backoff.fail()
            if self._leading:
                left = self._renewed_at + settings.renew_deadline - loop.time()
                if left <= 0:
                    log.error("could not renew the lease %s for %gs (%s); no longer running the duties",
                              settings.name, settings.renew_deadline, error or type(error).__name__)
                    self._set_leading(False)
                else:
                    delay = min(delay, left)  # the last try falls on the renew deadline: step down then, not later
            if delay:
                log.warning("lease %s: %s; trying again in %.1fs", settings.name, error or type(error).__name__,
                            delay)
            return delay
        self._backoff.reset()
        if leads:
            self._renewed_at = loop.time()
            self._set_leading(True)
            return settings.retry_period
        self._set_leading(False)
        return self._until_expiry()

    async def _acquire_or_renew(self) -> bool:
        """Whether this replica holds the Lease after one round of calls (a lost race is ``False``)."""
        settings = self.settings
        name, namespace = settings.name, settings.namespace
        state = self._state if self._leading else None
        if state is None:
            try:
                state = parse_lease(await self._cluster.get("leases", name, namespace=namespace))
            except NotFound:
                state = None
        now = self._clock()
        if state is not None and state.held_by_another(settings.identity, now):
            self._state = state
            return False
        body = held_lease(name, namespace, state, identity=settings.identity, duration=settings.duration, now=now)
        try:
            if state is None:
                written = await self._cluster.create("leases", body, namespace=namespace)
            else:
                written = await self._cluster.replace("leases", name, body, namespace=namespace)
        except (AlreadyExists, Conflict):
            self._state = None  # someone wrote it first: read it again
            if self._leading:
                return await self._reread_after_conflict()
            return False
        self._state = parse_lease(written)
        if not self._leading:
            log.info("%s acquired the lease %s (transition %d)", settings.identity, name, self._state.transitions)
        return True

    async def _reread_after_conflict(self) -> bool:
        """A renewal lost a race: read the Lease; still ours (an echo of our own write) means renew from it."""
        state = parse_lease(await self._cluster.get("leases", self.settings.name, namespace=self.settings.namespace))
        self._state = state
        if state.held_by_another(self.settings.identity, self._clock()):
            log.warning("lease %s was taken over by %s", self.settings.name, state.holder)
            return False
        body = held_lease(self.settings.name, self.settings.namespace, state, identity=self.settings.identity,
                          duration=self.settings.duration, now=self._clock())
        self._state = parse_lease(await self._cluster.replace("leases", self.settings.name, body,
                                                              namespace=self.settings.namespace))
        return True

    def _until_expiry(self) -> float:
        """Seconds until the current holder's claim runs out (when to ask again), at least the retry period's fifth."""
        state = self._state
        expiry = state.expires_at() if state is not None else None
        if expiry is None:
            return self.settings.retry_period
        seconds = (expiry - self._clock()).total_seconds() + EXPIRY_MARGIN
        return min(max(seconds, self.settings.retry_period / 5), self.settings.duration + EXPIRY_MARGIN)

    def _set_leading(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        log.info("%s %s the gateway's duties", self.settings.identity, "now runs" if leading else "no longer runs")
        for listener in list(self._listeners):
            try:
                listener(leading)
            except Exception:
                log.exception("a listener of lease %s failed", self.settings.name)
