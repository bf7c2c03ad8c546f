"""The benchmarks' results kept as JSON with a short history, so that a regression shows.

``bench/results/<name>.json`` holds ``{"runs": [...]}``, oldest first, at most :data:`KEEP` runs;
each run is ``{"at": ISO time, "host": ..., "quick": bool, "figures": {name: value}}``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
KEEP = 20


def record(name: str, figures: dict[str, float | None], *, quick: bool) -> dict[str, Any] | None:
    """Append this run's figures to ``name``'s history; returns the previous run of the same kind, if any."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    try:
        runs: list[dict[str, Any]] = json.loads(path.read_text())["runs"]
    except (OSError, ValueError, KeyError):
        runs = []
    previous = next((run for run in reversed(runs) if run.get("quick") == quick), None)
    runs.append({
        "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load": round(os.getloadavg()[0], 2),
        "quick": quick,
        "figures": figures,
    })
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"runs": runs[-KEEP:]}, indent=1) + "\n")
    tmp.replace(path)
    return previous


def change(now: float | None, before: dict[str, Any] | None, name: str) -> str:
    """``"(was x)"`` against the previous run, or ``""``."""
    if before is None or now is None:
        return ""
    was = before.get("figures", {}).get(name)
    return "" if was is None else f"(was {was:g})"
