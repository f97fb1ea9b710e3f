"""Loading stored results: validation.json ⋈ bench cells by sha256, from a run dir, a store or a validation.json."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.report.sources import load_results
from tests.support.report_fixtures import FILES, REFERENCE_AP, make_export, make_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("run"))


def test_run_dir_joins_accuracy_with_cells(run_dir: Path) -> None:
    results = load_results(run_dir)
    assert len(results.files()) == len(FILES)
    bench = results.benchmarked()
    assert len(bench) == 9  # 3 tflite files × (cpu/2t, xnnpack/1t, xnnpack/2t)
    expected_ap = {f"{fmt}-{prec}": ap for fmt, prec, _, ap in FILES}
    for row in bench:
        assert row.mask_ap == pytest.approx(expected_ap[row.name])
        assert row.drop == pytest.approx(REFERENCE_AP - expected_ap[row.name])
        assert row.p50_ms == pytest.approx(float(np.percentile(row.runs_ms, 50)))
        assert row.fps == pytest.approx(1000.0 / float(np.mean(row.runs_ms)))
        assert row.device == "local host" and row.gmacs == pytest.approx(0.42)
        assert row.thermal_delta_c == pytest.approx(3.5)
    onnx = [r for r in results.rows if r.format == "onnx"]
    assert len(onnx) == 1 and onnx[0].status == "not benchmarked" and onnx[0].p50_ms is None
    failed = results.failed()
    assert [(r.delegate, r.status) for r in failed] == [("gpu", "failed")]
    assert "not available" in (failed[0].error or "")


def test_store_alone_finds_validation_beside_the_models(run_dir: Path) -> None:
    results = load_results(run_dir / "results.sqlite")
    assert len(results.benchmarked()) == 9
    assert all(r.mask_ap is not None for r in results.benchmarked())
    assert results.variants() == ["blitzmask-tiny"]


def test_validation_json_alone_has_accuracy_without_latency(tmp_path: Path) -> None:
    export = make_export(tmp_path / "export")
    results = load_results(export / "validation.json")
    assert len(results.rows) == len(FILES)
    assert not results.benchmarked()
    int8 = next(r for r in results.rows if r.precision == "int8")
    assert int8.drop == pytest.approx(0.004)


def test_missing_gmacs_gives_none(tmp_path: Path) -> None:
    export = make_export(tmp_path / "export", gmacs=None)
    assert all(r.gmacs is None for r in load_results(export).rows)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("validation.json", "{not json", "not valid JSON"),
        ("validation.json", json.dumps({"variant": "x"}), "no 'variants' list"),
        ("validation.json", json.dumps({"variants": [{"name": "a"}]}), "lacks"),
        ("results.sqlite", "this is not a database file at all" * 100, "not a BlitzMask bench store"),
        ("notes.txt", "hello", "expected a run directory"),
    ],
)
def test_bad_results_are_bad_input(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(BadInput, match=message):
        load_results(path)


def test_foreign_sqlite_is_bad_input_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()
    with pytest.raises(BadInput, match="no 'cells' table"):
        load_results(path)
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    conn.close()
    assert tables == ["notes"]


def test_missing_and_empty_paths_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not found"):
        load_results(tmp_path / "nope")
    with pytest.raises(BadInput, match=r"no validation\.json and no \.sqlite"):
        load_results(tmp_path)


def test_a_store_whose_write_ahead_log_a_killed_process_left_is_read_whole(tmp_path: Path) -> None:
    """The newest cells live only in the WAL of a writer killed before its checkpoint: they are read, untouched."""
    import subprocess
    import sys

    root = make_run(tmp_path / "run")
    writer = (
        "import os, sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1])\n"
        "conn.execute('PRAGMA wal_autocheckpoint=0')\n"
        "conn.execute(\"UPDATE cells SET p50_ms = 12345.0 WHERE status = 'done'\")\n"
        "conn.commit()\n"
        "os._exit(0)  # no close: no checkpoint, the WAL stays\n"
    )
    subprocess.run([sys.executable, "-c", writer, str(root / "results.sqlite")], check=True, timeout=60)
    assert (root / "results.sqlite-wal").stat().st_size > 0
    cells = [r for r in load_results(root / "results.sqlite").rows if r.status == "done"]
    assert len(cells) == 9 and all(r.p50_ms == 12345.0 for r in cells)
