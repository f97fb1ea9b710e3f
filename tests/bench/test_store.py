"""The SQLite result store: pending cells, one row per cell, thread safety."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading

import pytest

from blitzmask_deploy.bench.protocol import base_result
from blitzmask_deploy.bench.store import CellSpec, ResultStore


def _spec(**over: object) -> CellSpec:
    base = dict(
        model_path="/m.tflite", model_sha256="ab" * 32, model_name="tflite-fp32", variant="blitzmask-tiny",
        precision="fp32", device_serial="local", device_kind="local", device_model="host",
        device_fingerprint="host/x", delegate="xnnpack", threads=4, warmup=10, runs=100,
    )  # fmt: skip
    base.update(over)
    return CellSpec(**base)  # type: ignore[arg-type]


def _ok(runs_ms: list[float]) -> dict:
    res = base_result("/m.tflite", delegate="xnnpack", threads=4, warmup=10, runs=len(runs_ms))
    res.update(status="ok", runs_ms=runs_ms, init_ms=5.0, first_inference_ms=9.0, peak_memory_kb=1234)
    res["delegate_applied"] = "xnnpack"
    return res


@pytest.mark.parametrize(
    "field", ["model_sha256", "device_serial", "device_fingerprint", "delegate", "threads", "warmup", "runs"]
)
def test_cell_key_depends_on_every_identifying_setting(field: str) -> None:
    spec = _spec()
    value = getattr(spec, field)
    other = dataclasses.replace(spec, **{field: value + 1 if isinstance(value, int) else value + "x"})
    assert spec.key != other.key
    assert spec.key == _spec().key  # stable
    assert dataclasses.replace(spec, sustained_s=10).key != spec.key
    assert dataclasses.replace(spec, model_path="/elsewhere.tflite").key == spec.key  # content, not path


def test_pending_cells_are_inserted_once(tmp_path) -> None:
    store = ResultStore(tmp_path / "r.sqlite")
    cells = [_spec(threads=t) for t in (1, 2, 4)]
    assert store.add_pending(cells) == 3
    assert store.add_pending(cells) == 0
    assert [r["status"] for r in store.cells()] == ["pending"] * 3
    assert store.status(cells[0].key) == "pending" and store.status("ff" * 16) is None
    mode = sqlite3.connect(tmp_path / "r.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_finish_stores_stats_and_raw_result(tmp_path) -> None:
    store = ResultStore(tmp_path / "r.sqlite")
    cell, gpu = _spec(), _spec(delegate="gpu")
    store.add_pending([cell, gpu])
    store.mark_started(cell.key)
    assert store.finish(cell.key, _ok([3.0, 1.0, 2.0, 4.0]), cooldown_s=1.5) == "done"
    unsupported = base_result("/m.tflite", delegate="gpu", threads=4, warmup=10, runs=100)
    unsupported.update(status="unsupported_delegate", error="no gpu here")
    assert store.finish(gpu.key, unsupported) == "failed"
    (row,) = store.cells(status="done")
    assert row["p50_ms"] == pytest.approx(2.5) and row["min_ms"] == 1.0 and row["max_ms"] == 4.0
    assert row["fps"] == pytest.approx(400.0) and row["init_ms"] == 5.0 and row["first_ms"] == 9.0
    assert row["attempts"] == 1 and row["cooldown_s"] == 1.5 and row["started"] and row["finished"]
    assert json.loads(row["runs_ms"]) == [3.0, 1.0, 2.0, 4.0]
    assert json.loads(row["result_json"])["peak_memory_kb"] == 1234
    (failed,) = store.cells(status="failed")
    assert failed["error"] == "no gpu here" and failed["p50_ms"] is None
    assert [r["cell_key"] for r in store.cells(keys=[gpu.key])] == [gpu.key]


def test_concurrent_threads_each_write_their_cells(tmp_path) -> None:
    store = ResultStore(tmp_path / "r.sqlite")
    cells = {s: [_spec(device_serial=s, threads=t) for t in range(1, 21)] for s in ("a", "b", "c", "d")}

    def work(serial: str) -> None:
        store.add_pending(cells[serial])
        for c in cells[serial]:
            store.mark_started(c.key)
            store.finish(c.key, _ok([float(c.threads)]))
        store.close()

    threads = [threading.Thread(target=work, args=(s,)) for s in cells]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = store.cells()
    assert len(rows) == 80 and {r["status"] for r in rows} == {"done"}
    assert all(r["p50_ms"] == r["threads"] for r in rows)
