"""Probes for Kubernetes: ``/healthz`` (liveness) and ``/readyz`` (readiness), open without the token.

Liveness only says the process answers HTTP.  Readiness runs the app's
checks (the pod informer has synced, the response listener accepts
connections): 200 with each check's result when all hold, 503 otherwise, so
a gateway still starting (or losing its cluster view) gets no traffic.
"""

from __future__ import annotations

from .errors import ApiHandler


class LivenessHandler(ApiHandler):
    public = True

    def get(self) -> None:
        self.write_json({"status": "ok"})


class ReadinessHandler(ApiHandler):
    public = True

    def get(self) -> None:
        checks = {name: bool(ok) for name, ok in self.context.readiness().items()}
        failing = sorted(name for name, ok in checks.items() if not ok)
        if not failing:
            self.write_json({"status": "ok", "checks": checks})
            return
        self.write_json({"reason": "Service Unavailable", "message": f"Not ready: {', '.join(failing)}.",
                         "checks": checks}, 503)
