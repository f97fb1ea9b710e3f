"""Regression gate: AP drop per file against numerics budgets (AP points → fractions), p50 latency limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from blitzmask_deploy.core.cards import load_numerics
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.report.gate import run_gate
from blitzmask_deploy.report.sources import load_results
from tests.support.report_fixtures import make_export, make_run

BUDGETS = """\
ap_drop_max: {fp32: 0.05, onnx: 0.05, fp16: 0.1, int8: 0.5}
parity_max_abs: {fp32: 1.0e-4, onnx: 1.0e-4, fp16: 5.0e-2}
latency_p50_ms_max: null
"""


@pytest.fixture
def budgets(tmp_path: Path) -> Path:
    path = tmp_path / "numerics.yaml"
    path.write_text(BUDGETS)
    return path


def test_good_drops_pass(tmp_path: Path, budgets: Path) -> None:
    result = run_gate(load_results(make_export(tmp_path / "export")), budgets=budgets)
    assert result.passed
    assert sorted(c.file for c in result.checks) == ["onnx-fp32", "tflite-fp16", "tflite-fp32", "tflite-int8"]
    int8 = next(c for c in result.checks if c.file == "tflite-int8")
    assert int8.limit == pytest.approx(0.005) and int8.value == pytest.approx(0.004)
    assert result.to_table().splitlines()[-1].startswith("gate: PASS (4/4")


def test_drop_over_budget_fails_only_that_file(tmp_path: Path, budgets: Path) -> None:
    export = make_export(tmp_path / "export", int8_ap=0.292)  # 0.8 AP points below the 30.0 reference
    result = run_gate(load_results(export / "validation.json"), budgets=budgets)
    assert not result.passed
    assert [c.file for c in result.checks if not c.passed] == ["tflite-int8"]
    table = result.to_table()
    assert "0.80 AP" in table and "0.50 AP" in table and "FAIL" in table
    assert table.splitlines()[-1] == "gate: FAIL (3/4 passed)"
    assert result.to_json()["passed"] is False


def test_latency_limit_checks_every_benchmarked_cell(tmp_path: Path, budgets: Path) -> None:
    results = load_results(make_run(tmp_path))
    result = run_gate(results, budgets=budgets, max_latency_ms=15.0)
    latency = [c for c in result.checks if c.check == "latency_p50"]
    assert len(latency) == len(results.benchmarked()) == 9
    for check in latency:
        assert check.passed == (check.value <= 15.0)
    assert {c.file for c in latency if c.passed} == {"tflite-int8"}
    assert not result.passed


def test_default_budgets_come_from_the_variant_card(tmp_path: Path) -> None:
    card = load_numerics("blitzmask-tiny")
    result = run_gate(load_results(make_export(tmp_path / "export")))
    int8 = next(c for c in result.checks if c.file == "tflite-int8")
    assert int8.limit == pytest.approx(card.max_drop_fraction("int8"))


def test_missing_budget_keys_are_noted_and_nothing_to_check_is_bad_input(tmp_path: Path) -> None:
    export = make_export(tmp_path / "export")
    partial = tmp_path / "partial.yaml"
    partial.write_text("ap_drop_max: {int8: 0.5}\nparity_max_abs: {}\n")
    result = run_gate(load_results(export), budgets=partial)
    assert [c.file for c in result.checks] == ["tflite-int8"]
    assert any("no AP-drop budget for 'fp16'" in n for n in result.notes)
    empty = tmp_path / "empty.yaml"
    empty.write_text("ap_drop_max: {}\nparity_max_abs: {}\n")
    with pytest.raises(BadInput, match="nothing to check"):
        run_gate(load_results(export), budgets=empty)


@pytest.mark.parametrize("content", ["ap_drop_max: [1, 2", "ap_drop_max: {int8: 0.5}\nbogus_key: 1\n"])
def test_bad_budget_file_is_bad_input(tmp_path: Path, content: str) -> None:
    path = tmp_path / "numerics.yaml"
    path.write_text(content)
    with pytest.raises(BadInput):
        run_gate(load_results(make_export(tmp_path / "export")), budgets=path)
    with pytest.raises(BadInput, match="not found"):
        run_gate(load_results(make_export(tmp_path / "export")), budgets=tmp_path / "missing.yaml")
