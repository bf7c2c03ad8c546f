"""Probes for Kubernetes: ``/healthz`` (liveness) and ``/readyz`` (readiness), open without the token.

Liveness only says the process answers HTTP.  Readiness runs the app's
checks (each informer, of kernel pods and of kernel records, can trust its
view of the cluster; the response listener accepts connections): 200 with
each check's result when all hold, 503 otherwise, with a ``message`` saying
why and ``reasons`` per failing check, so a gateway still starting, cut off
from the API server or refused by it gets no traffic, and gets it again
once the cluster answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ApiHandler


@dataclass(frozen=True)
class Check:
    """One readiness check's result; ``reason`` says why it fails (empty when it holds)."""

    ok: bool
    reason: str = ""


def as_check(result: bool | Check) -> Check:
    """A check's result as :class:`Check` (a bare bool has no reason)."""
    return result if isinstance(result, Check) else Check(bool(result))


class LivenessHandler(ApiHandler):
    public = True

    def get(self) -> None:
        self.write_json({"status": "ok"})


class ReadinessHandler(ApiHandler):
    public = True

    def get(self) -> None:
        results = {name: as_check(result) for name, result in self.context.readiness().items()}
        checks = {name: check.ok for name, check in results.items()}
        failing = sorted(name for name, check in results.items() if not check.ok)
        if not failing:
            self.write_json({"status": "ok", "checks": checks})
            return
        reasons = {name: results[name].reason for name in failing if results[name].reason}
        why = "; ".join(f"{name}: {reason}" if reason else name
                        for name, reason in ((name, reasons.get(name, "")) for name in failing))
        self.write_json({"reason": "Service Unavailable", "message": f"Not ready: {why}.",
                         "checks": checks, "reasons": reasons}, 503)
