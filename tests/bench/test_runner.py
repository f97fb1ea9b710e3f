"""Sweeps: planning, parallel devices, resumability after a device disappears, failed cells, model expansion."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from blitzmask_deploy.bench import runner
from blitzmask_deploy.bench.errors import DeviceError, DeviceGone, DeviceTimeout
from blitzmask_deploy.bench.protocol import base_result
from blitzmask_deploy.bench.runner import ModelRef, Settings, expand_models, run_sweep
from blitzmask_deploy.bench.store import ResultStore
from blitzmask_deploy.core.artifacts import (
    CheckpointRef,
    ExportedFile,
    Manifest,
    TensorSpec,
    sha256_file,
    write_manifest,
)
from blitzmask_deploy.core.errors import BadInput


class FakeDevice:
    """Implements the device interface; `die_after` cells it raises DeviceGone, like an unplugged phone."""

    kind = "adb"
    adb_server = "127.0.0.1:5037"

    def __init__(self, serial: str, *, die_after: int | None = None, temps: list[float] | None = None) -> None:
        self.serial = serial
        self.die_after = die_after
        self.ran: list[tuple] = []
        self.threads_seen: set[str] = set()
        self.temps = temps or []
        self.flaky: set[str] = set()

    def info(self) -> dict:
        return {"fingerprint": f"acme/{self.serial}", "model": "Acme"}

    def alive(self) -> bool:
        return self.die_after is None or len(self.ran) < self.die_after

    def thermal(self) -> dict[str, float]:
        return {"cpu": self.temps.pop(0) if self.temps else 30.0}

    def ensure_app(self, apk: Path | None) -> int:
        return 1

    def prepare(self, model: Path, sha256: str) -> str:
        return f"/remote/{sha256}.tflite"

    def run(self, remote: str, *, cell_key: str, delegate: str, threads: int, **settings: object) -> dict:
        self.threads_seen.add(threading.current_thread().name)
        if not self.alive():
            raise DeviceGone(f"{self.serial}: device offline")
        if delegate in self.flaky:
            raise DeviceTimeout("am instrument timed out")
        self.ran.append((remote, delegate, threads))
        res = base_result(remote, delegate=delegate, threads=threads, warmup=0, runs=3)
        if delegate == "gpu":
            res.update(status="unsupported_delegate", error="no GPU delegate")
        else:
            res.update(status="ok", runs_ms=[float(threads), 2.0 * threads, 3.0 * threads])
        return res


MODELS = [ModelRef(Path(f"/m{i}.tflite"), f"{i:02x}" * 32, f"m{i}") for i in range(2)]


def _settings(**over: object) -> Settings:
    base = dict(delegates=["cpu", "xnnpack"], threads=[1, 4], warmup=0, runs=3)
    base.update(over)
    return Settings(**base)  # type: ignore[arg-type]


def test_sweep_runs_every_cell_on_every_device_in_parallel(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.sqlite")
    devices = [FakeDevice("A"), FakeDevice("B")]
    sweep = run_sweep(MODELS, devices, store, _settings(), progress=False)
    assert sweep.ran == 16 and sweep.skipped == 0 and not sweep.gone
    assert sweep.counts(store) == {"done": 16, "failed": 0, "pending": 0}
    assert all(len(d.ran) == 8 for d in devices)
    assert devices[0].threads_seen.isdisjoint(devices[1].threads_seen)  # one thread per device
    row = next(r for r in store.cells() if r["threads"] == 4 and r["device_serial"] == "B")
    assert row["p50_ms"] == 8.0 and row["device_fingerprint"] == "acme/B" and row["model_name"] in ("m0", "m1")


def test_unplugged_device_leaves_cells_pending_and_rerun_finishes(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.sqlite")
    flaky, steady = FakeDevice("A", die_after=3), FakeDevice("B")
    sweep = run_sweep(MODELS, [flaky, steady], store, _settings(), progress=False)
    assert "A" in sweep.gone and "offline" in sweep.gone["A"]
    assert sweep.counts(store) == {"done": 11, "failed": 0, "pending": 5}
    first_done = {r["cell_key"]: r["finished"] for r in store.cells(status="done")}
    replugged = FakeDevice("A")
    again = run_sweep(MODELS, [replugged, FakeDevice("B")], store, _settings(), progress=False)
    assert again.ran == 5 and again.skipped == 11 and not again.gone
    assert len(replugged.ran) == 5
    rows = store.cells()
    assert len(rows) == 16 and len({r["cell_key"] for r in rows}) == 16
    assert all(r["status"] == "done" for r in rows)
    assert {k: v for k, v in ((r["cell_key"], r["finished"]) for r in rows) if k in first_done} == first_done


def test_failed_cells_are_kept_and_only_retried_on_request(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.sqlite")
    dev = FakeDevice("A")
    dev.flaky = {"xnnpack"}
    sweep = run_sweep(MODELS[:1], [dev], store, _settings(delegates=["cpu", "xnnpack", "gpu"]), progress=False)
    assert sweep.counts(store) == {"done": 2, "failed": 4, "pending": 0} and not sweep.gone
    errors = {r["delegate"]: r["error"] for r in store.cells(status="failed")}
    assert "timed out" in errors["xnnpack"] and errors["gpu"] == "no GPU delegate"
    dev.flaky = set()
    again = run_sweep(MODELS[:1], [dev], store, _settings(delegates=["cpu", "xnnpack", "gpu"]), progress=False)
    assert again.ran == 0
    retry = run_sweep(
        MODELS[:1], [dev], store, _settings(delegates=["cpu", "xnnpack", "gpu"], retry_failed=True), progress=False
    )
    assert retry.ran == 4 and retry.counts(store) == {"done": 4, "failed": 2, "pending": 0}


class LateUnplug(FakeDevice):
    """An unplug whose error reaches the driver while the adb server still lists the device for a moment."""

    def __init__(self, serial: str) -> None:
        super().__init__(serial)
        self.checks = 0

    def alive(self) -> bool:
        self.checks += 1
        return self.checks == 1

    def run(self, remote: str, *, cell_key: str, delegate: str, threads: int, **settings: object) -> dict:
        raise DeviceError(f"{self.serial}: pull result failed: closed")


def test_error_of_a_device_going_away_leaves_the_cell_pending(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(runner, "SETTLE_S", 0.01)
    store = ResultStore(tmp_path / "r.sqlite")
    dev = LateUnplug("A")
    sweep = run_sweep(MODELS[:1], [dev], store, _settings(delegates=["cpu"], threads=[1]), progress=False)
    assert "A" in sweep.gone and dev.checks == 2
    assert sweep.counts(store) == {"done": 0, "failed": 0, "pending": 1}


def test_device_gone_before_planning_is_reported_not_raised(tmp_path: Path) -> None:
    class Unlisted(FakeDevice):
        def info(self) -> dict:
            raise DeviceGone(f"{self.serial}: device offline")

    store = ResultStore(tmp_path / "r.sqlite")
    sweep = run_sweep(MODELS, [Unlisted("A")], store, _settings(), progress=False)
    assert sweep.gone == {"A": "A: device offline"} and sweep.keys == [] and store.cells() == []


def test_cooldown_before_each_cell(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.sqlite")
    dev = FakeDevice("A", temps=[70.0, 55.0, 39.0])  # 70 and 55 are too hot, 39 is below 40
    run_sweep(
        MODELS[:1],
        [dev],
        store,
        _settings(delegates=["cpu"], threads=[1], cooldown_c=40.0, cooldown_poll_s=0.01),
        progress=False,
    )
    (row,) = store.cells()
    assert row["status"] == "done" and row["cooldown_s"] >= 0.02 and dev.temps == []  # two 0.01 s polls


INPUT = TensorSpec(name="images", tensor="serving_default_args_0", shape=[1, 64, 64, 3], dtype="float32")
OUTPUT = TensorSpec(name="out", tensor="serving_default_output_0_output", shape=[1, 64, 64, 8], dtype="float32")


def _export_dir(tmp_path: Path, tflite: Path, output: TensorSpec = OUTPUT) -> Path:
    """An export dir whose two .tflite files are copies of `tflite`, described by INPUT and `output`."""
    spec = TensorSpec(name="x", shape=[1, 8, 8, 3], dtype="float32")
    files = []
    for precision in ("fp32", "int8"):
        (tmp_path / f"model_{precision}.tflite").write_bytes(tflite.read_bytes())
        files.append(ExportedFile(file=f"model_{precision}.tflite", format="tflite", precision=precision,
                                  sha256=sha256_file(tflite), bytes=tflite.stat().st_size,
                                  inputs=[INPUT], outputs=[output]))  # fmt: skip
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    files.append(ExportedFile(file="model.onnx", format="onnx", precision="fp32", sha256=sha256_file(
        tmp_path / "model.onnx"), bytes=4, inputs=[spec], outputs=[spec]))  # fmt: skip
    manifest = Manifest(variant="blitzmask-tiny", input_size=64, categories=[],
                        checkpoint=CheckpointRef(path="c.pt", sha256="0" * 64), files=files, toolchain={},
                        created="2026-01-01")  # fmt: skip
    write_manifest(manifest, tmp_path)
    return tmp_path


def test_expand_models_from_export_dir_and_plain_files(tmp_path: Path, bench_tflite: Path) -> None:
    (tmp_path / "export_dir").mkdir()
    export = _export_dir(tmp_path / "export_dir", bench_tflite)
    plain = tmp_path / "other.tflite"
    plain.write_bytes(bench_tflite.read_bytes())
    refs = expand_models([export, plain])
    assert [(r.name, r.variant, r.precision) for r in refs] == [
        ("tflite-fp32", "blitzmask-tiny", "fp32"), ("tflite-int8", "blitzmask-tiny", "int8"), ("other", None, None),
    ]  # fmt: skip
    assert refs[2].sha256 == sha256_file(plain)
    (export / "model_int8.tflite").write_bytes(b"tampered")
    with pytest.raises(BadInput, match="does not match"):
        expand_models([export])
    with pytest.raises(BadInput, match="not found"):
        expand_models([tmp_path / "missing.tflite"])
    with pytest.raises(BadInput, match="neither"):
        expand_models([export / "model.onnx"])
    plain.write_bytes(b"x")
    with pytest.raises(BadInput, match=r"other\.tflite: cannot be read as a \.tflite model"):
        expand_models([plain])


class SlowDevice(FakeDevice):
    """A FakeDevice whose runs take a moment; its sweep starts measuring once every sweep on `start` got there."""

    def __init__(self, serial: str, start: threading.Barrier) -> None:
        super().__init__(serial)
        self.start = start

    def ensure_app(self, apk: Path | None) -> int:
        self.start.wait(120)  # both sweeps found all their cells pending (generous: the suite may load the CPU)
        return 1

    def run(self, remote: str, **settings: object) -> dict:
        time.sleep(0.02)
        return super().run(remote, **settings)  # type: ignore[arg-type]


def test_two_sweeps_of_the_same_cells_measure_each_cell_once(tmp_path: Path) -> None:
    start = threading.Barrier(2)
    first, second = SlowDevice("A", start), SlowDevice("A", start)  # one phone reached by two bench processes
    sweeps: list = []

    def sweep(device: FakeDevice) -> None:
        sweeps.append(run_sweep(MODELS, [device], ResultStore(tmp_path / "r.sqlite"), _settings(), progress=False))

    workers = [threading.Thread(target=sweep, args=(d,)) for d in (first, second)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(first.ran) + len(second.ran) == 8  # which sweep measures which cell is up to the scheduler
    assert sum(s.ran for s in sweeps) == 8
    rows = ResultStore(tmp_path / "r.sqlite").cells()
    assert len(rows) == 8 and {r["status"] for r in rows} == {"done"}
    assert {r["lease_until"] for r in rows} == {None}


def _claim_for(store: ResultStore, key: str, owner: str, lease_until: float) -> None:
    conn = sqlite3.connect(store.path)
    with conn:
        conn.execute("UPDATE cells SET claimed_by = ?, lease_until = ? WHERE cell_key = ?", (owner, lease_until, key))
    conn.close()


def test_stale_claims_are_taken_over_and_live_ones_skipped(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.sqlite")
    settings = _settings(delegates=["cpu"], threads=[1, 2, 4])
    cells = runner.plan_cells(MODELS[:1], "A", "adb", FakeDevice("A").info(), settings)
    store.add_pending(cells)
    host, later = socket.gethostname(), time.time() + 600
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _claim_for(store, cells[0].key, f"{host}:{dead.pid}:gone", later)  # its process died: taken over
    _claim_for(store, cells[1].key, f"{host}:{os.getpid()}:other", time.time() - 1)  # lease expired: taken over
    _claim_for(store, cells[2].key, f"{host}:{os.getpid()}:other", later)  # a live owner: left to it
    dev = FakeDevice("A")
    sweep = run_sweep(MODELS[:1], [dev], store, settings, progress=False)
    assert len(dev.ran) == 2 and sweep.ran == 2 and sweep.claimed_elsewhere == 1
    assert [store.status(c.key) for c in cells] == ["done", "done", "pending"]
    (held,) = store.cells(status="pending")
    assert held["claimed_by"].endswith(":other") and held["lease_until"] == pytest.approx(later)


def test_old_stores_gain_the_claim_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE cells (cell_key TEXT PRIMARY KEY, status TEXT NOT NULL, model_sha256 TEXT)")
    conn.execute("INSERT INTO cells VALUES ('k', 'done', 'ab')")
    conn.commit()
    conn.close()
    store = ResultStore(path)
    (row,) = store.cells()
    assert row["status"] == "done" and row["claimed_by"] is None and "lease_until" in row


@pytest.mark.parametrize(
    ("output", "difference"),
    [
        (
            OUTPUT.model_copy(update={"shape": [1, 64, 64, 9]}),
            "output 0 shape: [1, 64, 64, 8] in the file, [1, 64, 64, 9]",
        ),
        (OUTPUT.model_copy(update={"dtype": "int8"}), "output 0 dtype: float32 in the file, int8 in the manifest"),
        (OUTPUT.model_copy(update={"tensor": "heatmap"}), "output 0 name: serving_default_output_0_output in the file"),
    ],
)
def test_expand_models_refuses_a_file_whose_io_differs_from_its_manifest(
    tmp_path: Path, bench_tflite: Path, output: TensorSpec, difference: str
) -> None:
    export = _export_dir(tmp_path, bench_tflite, output)
    with pytest.raises(BadInput, match=r"model_fp32\.tflite does not match its manifest") as err:
        expand_models([export])
    assert difference in str(err.value)


def test_expand_models_refuses_an_unreadable_tflite_with_the_right_sha256(tmp_path: Path, bench_tflite: Path) -> None:
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer" * 8)
    (tmp_path / "export").mkdir()
    export = _export_dir(tmp_path / "export", junk)
    with pytest.raises(BadInput, match=r"cannot be read as a \.tflite model"):
        expand_models([export])
