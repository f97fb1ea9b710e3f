"""A small conv-net .tflite for bench tests, built once with litert-torch (in a subprocess) and cached.

The `bench_tflite` fixture (tests/conftest.py) uses it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_bench_tflite.py"


def build_tflite(size: int = 64, channels: int = 16) -> Path:
    """The cached .tflite for (size, channels) from scripts/make_bench_tflite.py --cached."""
    cmd = [sys.executable, str(SCRIPT), "--cached", "--size", str(size), "--channels", str(channels)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def bench_tflite() -> Path:
    """A 64×64 NHWC float conv-net .tflite (a few ms per run on one CPU thread)."""
    return build_tflite()
