"""The README's examples run as written: a newcomer copies them first."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks(section: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end if end >= 0 else None], re.S)


def test_the_simulated_cluster_example_runs_and_shows_the_injected_fault(tmp_path: Path) -> None:
    (block,) = _python_blocks("The simulated cluster")
    script = tmp_path / "example.py"
    script.write_text(block)

    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "injected: 503 ServiceUnavailable"
    assert re.fullmatch(r"created: [0-9a-f-]{36}", lines[1])
