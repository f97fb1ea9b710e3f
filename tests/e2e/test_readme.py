"""The README's Python quickstart runs as written (on a small dataset and checkpoint laid out where it expects)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_python_quickstart_runs(synth_dataset: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quickstart: Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "runs" / "tiny").mkdir(parents=True)
    shutil.copytree(synth_dataset, tmp_path / "runs" / "ds")
    shutil.copy(tiny_checkpoint, tmp_path / "runs" / "tiny" / "best.pt")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "tflite-int8" in run.stdout  # the validation table
    assert (tmp_path / "runs" / "export" / "manifest.json").is_file()
    assert (tmp_path / "runs" / "results.sqlite").is_file()
