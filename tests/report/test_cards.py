"""`--update-cards`: measured figures appended to perf.yaml, paper figures kept, no duplicates on re-run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from blitzmask_deploy.core.cards import MODELS_DIR, load_perf
from blitzmask_deploy.report.cards import update_perf_cards
from blitzmask_deploy.report.sources import load_results
from tests.support.report_fixtures import make_run


def test_update_cards_appends_once_and_keeps_paper(tmp_path: Path) -> None:
    root = tmp_path / "models"
    shutil.copytree(MODELS_DIR / "blitzmask-tiny", root / "blitzmask-tiny")
    # the b4 card carries paper figures: use it as the tiny card to check they survive the update
    shutil.copy(MODELS_DIR / "blitzmask-b4" / "perf.yaml", root / "blitzmask-tiny" / "perf.yaml")
    paper_before = load_perf("blitzmask-tiny", root).paper
    results = load_results(make_run(tmp_path / "run"))

    written = update_perf_cards(results, root=root)
    assert written == [root / "blitzmask-tiny" / "perf.yaml"]
    card = load_perf("blitzmask-tiny", root)
    assert card.paper == paper_before and card.paper is not None
    assert len(card.measured) == len(results.benchmarked()) == 9
    int8 = next(m for m in card.measured if m.precision == "int8" and m.delegate == "xnnpack" and m.threads == 2)
    row = next(r for r in results.benchmarked() if r.precision == "int8" and r.delegate == "xnnpack" and r.threads == 2)
    assert int8.p50_ms == pytest.approx(row.p50_ms, abs=1e-3)
    assert int8.mask_ap == pytest.approx(29.6) and int8.mask_ap_drop == pytest.approx(0.4)
    assert int8.input_size == 128 and int8.device == "local host"

    assert update_perf_cards(results, root=root) == []  # nothing new
    assert len(load_perf("blitzmask-tiny", root).measured) == 9


def test_unknown_variant_is_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = load_results(make_run(tmp_path / "run"))
    assert update_perf_cards(results, root=tmp_path / "empty") == []
    assert "not updating cards of blitzmask-tiny" in capsys.readouterr().err
