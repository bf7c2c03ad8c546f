"""How the gateway's replicas share the duties that must happen once: who this replica is, and the Lease's timing.

Variables: ``EG_REPLICA_ID`` (this replica's name; default: ``POD_NAME``, or in a pod its
hostname, which is the pod's name; outside a pod the host's name, the process id and a random
suffix), ``EG_LEASE_DURATION`` (15 s), ``EG_LEASE_RENEW_DEADLINE`` (10 s) and
``EG_LEASE_RETRY_PERIOD`` (2 s), client-go's leader-election defaults.  The replica holding
the Lease restarts kernels whose pod died, culls idle kernels and collects leftovers; when it
dies another takes over within the lease duration.  :meth:`ReplicaConfig.lease_settings`
hands them to :class:`gateway.cluster.lease.LeaseElector`.
"""

from __future__ import annotations

import os
import secrets
import socket

from traitlets import Float, HasTraits, Unicode, default

from gateway.cluster.lease import LeaseSettings

from .values import ConfigError, env, seconds_env


def default_identity(environ: dict[str, str] | None = None) -> str:
    """``POD_NAME``; else, in a pod, its hostname (the pod's name); else host, process id and a random suffix."""
    environ = dict(os.environ) if environ is None else environ
    if environ.get("POD_NAME"):
        return environ["POD_NAME"]
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return environ.get("HOSTNAME") or socket.gethostname()
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class ReplicaConfig(HasTraits):
    """This replica's identity and the duties' Lease timing, one part of :class:`~gateway.config.GatewayConfig`."""

    replica_id = Unicode(help="This replica's name in the duties' Lease and the kernel records (EG_REPLICA_ID).").tag(
        config=True)
    lease_duration = Float(help="Seconds a replica holds the duties' Lease after its last renewal "
                                "(EG_LEASE_DURATION).").tag(config=True)
    lease_renew_deadline = Float(help="Seconds the holder keeps running the duties while its renewals fail "
                                      "(EG_LEASE_RENEW_DEADLINE); less than the lease duration.").tag(config=True)
    lease_retry_period = Float(help="Seconds between the holder's renewals (EG_LEASE_RETRY_PERIOD); less than "
                                    "the renew deadline.").tag(config=True)

    def _check_replicas(self) -> None:
        """Called by :class:`~gateway.config.GatewayConfig` once every default is read."""
        if not 0 < self.lease_retry_period < self.lease_renew_deadline < self.lease_duration:
            raise ConfigError("EG_LEASE_RETRY_PERIOD < EG_LEASE_RENEW_DEADLINE < EG_LEASE_DURATION must hold "
                              "(all positive)")
        if not self.replica_id.strip():
            raise ConfigError("EG_REPLICA_ID must not be blank")

    def lease_settings(self, namespace: str) -> LeaseSettings:
        """The Lease of the gateway's ``namespace`` as this replica contends for it."""
        return LeaseSettings(namespace=namespace, identity=self.replica_id, duration=self.lease_duration,
                             renew_deadline=self.lease_renew_deadline, retry_period=self.lease_retry_period)

    @default("replica_id")
    def _replica_id(self) -> str:
        return (env("EG_REPLICA_ID") or "").strip() or default_identity()

    @default("lease_duration")
    def _lease_duration(self) -> float:
        return seconds_env("EG_LEASE_DURATION", 15.0, positive=True)

    @default("lease_renew_deadline")
    def _lease_renew_deadline(self) -> float:
        return seconds_env("EG_LEASE_RENEW_DEADLINE", 10.0, positive=True)

    @default("lease_retry_period")
    def _lease_retry_period(self) -> float:
        return seconds_env("EG_LEASE_RETRY_PERIOD", 2.0, positive=True)
