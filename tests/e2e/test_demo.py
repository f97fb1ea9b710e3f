"""A small `blitzmask demo` end to end: tiny data at 128, a short training, all four exports, validation, a local
benchmark with few runs, the report — then a re-run that reuses every step, and the gate on the demo's results."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.mark.e2e
@pytest.mark.slow
def test_small_demo_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ("demo", "--out", str(out), "--minutes", "0.3", "--train-images", "48", "--val-images", "8")
    args += ("--size", "128", "--calib-images", "4", "--runs", "5", "--json")
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    payload = json.loads(r.stdout)
    report = Path(payload["report"])
    assert report == out / "report" / "report.html" and report.is_file()
    assert [s["skipped"] for s in payload["steps"]] == [False] * 6

    validation = json.loads((out / "export" / "validation.json").read_text())
    names = {v["name"] for v in validation["variants"]}
    assert names == {"tflite-fp32", "tflite-fp16", "tflite-int8", "onnx-fp32"}
    with sqlite3.connect(out / "results.sqlite") as conn:
        done = conn.execute("SELECT model_name, COUNT(*) FROM cells WHERE status='done' GROUP BY model_name").fetchall()
    assert {name for name, _ in done} == {"tflite-fp32", "tflite-fp16", "tflite-int8"}

    page = report.read_text()
    for name in names:
        assert name in page
    assert page.count("data:image/png;base64,") >= 4  # pareto, latency, AP drop, roofline (+ thermal if any)

    start = time.perf_counter()
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [s["skipped"] for s in json.loads(again.stdout)["steps"]][:4] == [True] * 4
    assert "reusing" in again.stderr and time.perf_counter() - start < 60
    other = run_cli("demo", "--out", str(out), "--size", "160", "--train-images", "48", "--val-images", "8")
    assert other.returncode == 2 and "other data options" in other.stderr  # never mixes datasets

    gate = run_cli("gate", str(out), "--json")
    assert gate.returncode in (0, 1)
    checks = json.loads(gate.stdout)["checks"]
    assert {c["file"] for c in checks if c["check"] == "ap_drop"} == names
