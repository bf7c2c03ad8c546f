"""Building kernelgate prints no deprecation warning of its build backend (every install would show it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHECKOUT = Path(__file__).resolve().parents[1]
DEPRECATION = re.compile(r"SetuptoolsDeprecationWarning|DeprecationWarning|is deprecated", re.I)


def build_output(source: Path, wheels: Path) -> str:
    """What ``pip wheel --no-deps -v`` prints building ``source`` (the backend's own output included)."""
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(wheels), str(source)],
                           capture_output=True, text=True, timeout=600)
    output = built.stdout + built.stderr
    if built.returncode != 0 and "Could not find a version" in output:
        pytest.skip(f"the build backend could not be fetched from the package registry: {output[-300:]}")
    assert built.returncode == 0, output[-2000:]
    return output


def test_the_build_warns_of_nothing_deprecated(tmp_path: Path) -> None:
    output = build_output(CHECKOUT, tmp_path / "wheels")
    assert not [line for line in output.splitlines() if DEPRECATION.search(line)]
