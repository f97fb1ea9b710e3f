"""Bad report and gate inputs: nothing of an existing report is touched before its inputs are known good, and the
gate never passes by skipping a result or a budget it cannot read."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.report.gate import run_gate
from blitzmask_deploy.report.html import write_report
from blitzmask_deploy.report.sources import load_results
from tests.support.report_fixtures import make_export, make_run

GOOD_BUDGETS = "ap_drop_max: {fp32: 0.05, onnx: 0.05, fp16: 0.1, int8: 0.5}\nparity_max_abs: {fp32: 1.0e-4}\n"


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _budgets(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "numerics.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text",
    [
        "ap_drop_max: [1, 2",
        "ap_drop_max: {int8: .nan}\nparity_max_abs: {}\n",
        "ap_drop_max: {int8: 0.5}\nparity_max_abs: {fp32: .inf}\n",
        "ap_drop_max: {int8: 0.5}\nparity_max_abs: {}\nlatency_p50_ms_max: -3\n",
    ],
    ids=["yaml", "nan-drop", "inf-parity", "negative-latency"],
)
def test_a_bad_budgets_file_leaves_an_existing_report_untouched(tmp_path: Path, text: str) -> None:
    results = load_results(make_run(tmp_path / "run"))
    out = tmp_path / "report"
    write_report(results, out)
    before = _contents(out)
    with pytest.raises(BadInput, match=r"numerics\.yaml"):
        write_report(results, out, budgets=_budgets(tmp_path, text))
    assert _contents(out) == before


def test_a_new_report_replaces_old_figures_and_leaves_no_staging_folder(tmp_path: Path) -> None:
    out = tmp_path / "report"
    write_report(load_results(make_run(tmp_path / "run")), out)
    files = write_report(load_results(make_export(tmp_path / "validated")), out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["report.html", "summary.md", *(p.name for p in files.images)]
    )


@pytest.mark.parametrize("value", ["abc", None, float("nan"), True])
def test_an_unreadable_ap_drop_is_bad_input_not_skipped(tmp_path: Path, value: object) -> None:
    export = make_export(tmp_path / "export")
    validation = json.loads((export / "validation.json").read_text())
    validation["variants"][2]["mask_ap_drop"] = value
    (export / "validation.json").write_text(json.dumps(validation))
    with pytest.raises(BadInput, match=r"variants\[2\] \(tflite-int8\): mask_ap_drop .* is not a finite number"):
        run_gate(load_results(export), budgets=_budgets(tmp_path, GOOD_BUDGETS))


def test_a_file_of_an_unknown_precision_is_bad_input_not_skipped(tmp_path: Path) -> None:
    export = make_export(tmp_path / "export")
    validation = json.loads((export / "validation.json").read_text())
    validation["variants"][2]["precision"] = "int9"
    (export / "validation.json").write_text(json.dumps(validation))
    with pytest.raises(BadInput, match="precision 'int9' is no exported file's"):
        run_gate(load_results(export), budgets=_budgets(tmp_path, GOOD_BUDGETS))


def test_a_done_cell_without_a_latency_is_bad_input_under_a_limit(tmp_path: Path) -> None:
    root = make_run(tmp_path / "run")
    with sqlite3.connect(root / "results.sqlite") as conn:
        conn.execute("UPDATE cells SET p50_ms = NULL WHERE rowid = 1")
    results = load_results(root)
    budgets = _budgets(tmp_path, GOOD_BUDGETS)
    assert run_gate(results, budgets=budgets).passed  # no latency limit: latency is not checked
    with pytest.raises(BadInput, match="p50 latency None is unreadable"):
        run_gate(results, budgets=budgets, max_latency_ms=100.0)


def test_a_cell_whose_latency_is_not_a_number_is_refused_when_read(tmp_path: Path) -> None:
    root = make_run(tmp_path / "run")
    with sqlite3.connect(root / "results.sqlite") as conn:
        conn.execute("UPDATE cells SET p50_ms = 'fast' WHERE rowid = 1")
    conn.close()
    with pytest.raises(BadInput, match=r"results\.sqlite: cells cell \w+: p50_ms 'fast' is not a finite number >= 0"):
        load_results(root)


def test_cells_without_latency_are_noted_under_a_limit(tmp_path: Path) -> None:
    result = run_gate(load_results(make_run(tmp_path)), budgets=_budgets(tmp_path, GOOD_BUDGETS), max_latency_ms=100.0)
    assert any("gpu / 2t: failed, no latency to check" in note for note in result.notes)


@pytest.mark.parametrize("limit", [float("nan"), float("inf"), -1.0])
def test_a_latency_limit_must_be_a_finite_number(tmp_path: Path, limit: float) -> None:
    with pytest.raises(BadInput, match="--max-latency-ms must be a finite number"):
        run_gate(load_results(make_run(tmp_path)), max_latency_ms=limit)
