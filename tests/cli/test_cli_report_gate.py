"""`blitzmask report` and `blitzmask gate` as a user (or a CI job) runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

BUDGETS = "ap_drop_max: {fp32: 0.05, fp16: 0.1, int8: 0.5}\nparity_max_abs: {fp32: 1.0e-4}\n"


def write_validation(path: Path, int8_ap: float) -> Path:
    """A validation.json with a 0.300 reference and fp32 / int8 files."""
    variants = [
        {"name": f"tflite-{p}", "format": "tflite", "precision": p, "file": f"model_{p}.tflite", "sha256": p * 8,
         "mask_ap": ap, "mask_ap_drop": 0.300 - ap, "latency_ms_p50": 5.0, "passed": True}
        for p, ap in (("fp32", 0.300), ("int8", int8_ap))
    ]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"variant": "blitzmask-tiny", "reference": {"name": "checkpoint", "mask_ap": 0.300}, "variants": variants}
        )
    )
    return path


@pytest.fixture
def budgets(tmp_path: Path) -> Path:
    path = tmp_path / "numerics.yaml"
    path.write_text(BUDGETS)
    return path


def test_gate_passes_within_budget(tmp_path: Path, budgets: Path) -> None:
    good = write_validation(tmp_path / "good" / "validation.json", int8_ap=0.297)
    r = run_cli("gate", str(good), "--budgets", str(budgets))
    assert r.returncode == 0, r.stderr
    assert "FAIL" not in r.stdout and r.stdout.strip().endswith("gate: PASS (2/2 passed)")


def test_gate_fails_over_budget_with_a_table_and_json(tmp_path: Path, budgets: Path) -> None:
    bad = write_validation(tmp_path / "bad" / "validation.json", int8_ap=0.290)
    r = run_cli("gate", str(bad.parent), "--budgets", str(budgets))
    assert r.returncode == 1
    int8_line = next(line for line in r.stdout.splitlines() if "tflite-int8" in line)
    assert "1.00 AP" in int8_line and "0.50 AP" in int8_line and int8_line.endswith("FAIL")
    r = run_cli("gate", str(bad), "--budgets", str(budgets), "--json")
    assert r.returncode == 1
    payload = json.loads(r.stdout)
    assert payload["passed"] is False
    assert [c["file"] for c in payload["checks"] if not c["passed"]] == ["tflite-int8"]


def test_gate_and_report_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    for args in (("gate", str(tmp_path / "missing")), ("report", str(tmp_path), "--out", str(tmp_path / "r"))):
        r = run_cli(*args)
        assert r.returncode == 2
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")


def test_report_writes_html_and_json(tmp_path: Path, budgets: Path) -> None:
    validation = write_validation(tmp_path / "run" / "validation.json", int8_ap=0.297)
    out = tmp_path / "report"
    r = run_cli("report", str(validation), "--out", str(out), "--budgets", str(budgets), "--json")
    assert r.returncode == 0, r.stderr
    payload = json.loads(r.stdout)
    assert Path(payload["html"]) == out / "report.html" and (out / "report.html").is_file()
    assert (out / "summary.md").is_file() and (out / "ap_drop.png").is_file()
    assert payload["gate_passed"] is True and payload["rows"] == 2
