"""`blitzmask validate EXPORT --device`: the AP of every .tflite file measured on the emulated phone equals its host
AP with parity 0, a rerun measures nothing again, a faulty delegate's drop is reported and fails the gate, a
delegate the device lacks is one line, an unplug keeps what was measured and a rerun finishes the rest, and an app
too old for tensor packs is refused in one line. Skipped when the emulated device is not available here.

`tiny_export` is untrained (mask AP about 0.002 points), so noise on its outputs moves its AP either way and no drop
can exceed the card's budgets: there a zeroed heatmap (the `zero` fault, on the CPU delegate of the same device)
makes the drop, checked against a budgets file of zero drops. `trained_export` has a real AP, which the `noise`
fault drops beyond the card's own budget."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from blitzmask_deploy.bench.adb import AndroidDevice
from blitzmask_deploy.bench.protocol import APP_VERSION_CODE, PACKAGE
from tests.conftest import cli_command, run_cli
from tests.support.fake_apk import write_apk

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
IMAGES = 8


def _args(export: Path, data: Path, device, store: Path, delegates: str = "xnnpack", apk: Path | None = None):
    """The arguments of `validate EXPORT --device` on the emulated `device`, JSON out."""
    return [
        "validate", export, "--data", data, "--device", device.serial, "--adb", device.adb_address,
        *(("--apk", apk) if apk else ()), "--delegate", delegates, "--threads", 2, "--images", IMAGES, "--store",
        store, "--json",
    ]  # fmt: skip


def _validate(export: Path, data: Path, device, apk: Path, store: Path, delegates: str = "xnnpack"):
    return run_cli(*_args(export, data, device, store, delegates, apk))


def _attempts(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as conn:
        return conn.execute("SELECT cell_key, attempts, finished FROM accuracy_cells ORDER BY rowid").fetchall()


def test_device_ap_equals_host_ap_and_a_rerun_measures_nothing(
    emulated_device, apk: Path, tiny_export: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    store = tmp_path / "results.sqlite"
    proc = _validate(tiny_export, synth_dataset, emulated_device, apk, store)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["images"], out["ran"], out["done"], out["passed"]) == (IMAGES, 3, 3, True)
    assert sorted(c["precision"] for c in out["cells"]) == ["fp16", "fp32", "int8"]
    for cell in out["cells"]:
        assert cell["status"] == "done"
        assert (cell["delegate_applied"], cell["fallback"]) == ("xnnpack", False)
        assert abs(cell["mask_ap"] - cell["host_ap"]) <= 1e-9 and abs(cell["host_ap_drop"]) <= 1e-9
        assert cell["mask_ap_drop"] == pytest.approx(cell["reference_ap"] - cell["mask_ap"])
        assert set(cell["parity"]) == {"heatmap", "coefficients", "spanning_set", "box"}
        assert all(v == 0 for v in (*cell["parity"].values(), *cell["parity_mean"].values()))
    before = _attempts(store)
    again = _validate(tiny_export, synth_dataset, emulated_device, apk, store)
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout)
    assert (rerun["ran"], rerun["skipped"]) == (0, 3) and rerun["cells"] == out["cells"]
    assert _attempts(store) == before


def test_a_faulty_delegate_drops_the_device_ap_and_fails_the_gate(
    faulty_emulated_device, apk: Path, tiny_export: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    store = tmp_path / "results.sqlite"
    proc = _validate(tiny_export, synth_dataset, faulty_emulated_device, apk, store, delegates="xnnpack,cpu,gpu")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["done"], out["failed"], out["pending"]) == (6, 3, 0)
    by = {(c["precision"], c["delegate"]): c for c in out["cells"]}
    for precision in ("fp32", "fp16", "int8"):
        gpu = by[precision, "gpu"]
        assert gpu["status"] == "failed" and "gpu" in gpu["error"]
        assert f"tflite-{precision} on {faulty_emulated_device.serial} / gpu: unsupported_delegate" in proc.stderr
        noisy = by[precision, "xnnpack"]
        assert all(v > 0 for v in noisy["parity"].values()) and noisy["mask_ap"] != noisy["host_ap"]
        assert noisy["host_ap_drop"] == pytest.approx(noisy["host_ap"] - noisy["mask_ap"])
        assert noisy["budget"]["device_ap_drop_max"] == pytest.approx(
            {"fp32": 0.001, "fp16": 0.003}.get(precision, 0.01)
        )
    drops = {p: by[p, "cpu"]["host_ap_drop"] for p in ("fp32", "fp16", "int8")}
    assert drops["fp32"] > 0 and drops["fp16"] > 0, drops
    budgets = tmp_path / "numerics.yaml"
    budgets.write_text(
        "ap_drop_max: {fp32: 100, fp16: 100, int8: 100, onnx: 100}\nparity_max_abs: {}\n"
        "device_ap_drop_max: {fp32: 0, fp16: 0, int8: 0}\n"
    )
    gate = run_cli("gate", store, "--budgets", budgets, "--json")
    assert gate.returncode == 1, gate.stdout + gate.stderr
    checks = json.loads(gate.stdout)["checks"]
    failed = {(c["file"], c["target"].rpartition(" / ")[2]) for c in checks if not c["passed"]}
    assert {("tflite-fp32", "cpu"), ("tflite-fp16", "cpu")} <= failed
    assert all(c["check"] == "device_ap_drop" for c in checks)
    report = run_cli("report", store, "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Accuracy on devices" in page and page.count("<td>tflite-") >= 9


FIGURES = ("status", "mask_ap", "host_ap", "reference_ap", "parity", "parity_mean", "delegate_applied")


def test_an_unplug_keeps_what_was_measured_and_a_rerun_measures_only_the_rest(
    emulated_device, apk: Path, tiny_export: Path, synth_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _validate(tiny_export, synth_dataset, emulated_device, apk, tmp_path / "whole.sqlite", "xnnpack,cpu")
    assert whole.returncode == 0, whole.stderr
    expected = {(c["precision"], c["delegate"]): {k: c[k] for k in FIGURES} for c in json.loads(whole.stdout)["cells"]}
    services, runner = emulated_device.services, emulated_device.services.accuracy_runner
    second = threading.Event()
    runs = []

    def unplugged_during_the_second_cell(*args, **kwargs) -> dict:
        runs.append(args)
        if len(runs) == 2:
            second.set()
            time.sleep(5)  # the cable is pulled meanwhile: this answer reaches nobody
        return runner(*args, **kwargs)

    monkeypatch.setattr(services, "accuracy_runner", unplugged_during_the_second_cell)
    store = tmp_path / "results.sqlite"
    command = cli_command(*_args(tiny_export, synth_dataset, emulated_device, store, "xnnpack,cpu", apk))
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert second.wait(180), "the second cell never started"
        emulated_device.unplug()
        out, err = proc.communicate(timeout=180)
    finally:
        emulated_device.replug()
    monkeypatch.undo()
    assert proc.returncode == 1, err
    cut = json.loads(out)
    assert (cut["done"], cut["pending"], cut["failed"], cut["ran"]) == (1, 5, 0, 1)
    assert list(cut["devices_stopped"]) == [emulated_device.serial]
    gone = [line for line in err.splitlines() if line.startswith(f"device {emulated_device.serial} ")]
    assert len(gone) == 1 and gone[0].endswith(": 5 cells pending: rerun to finish"), err
    (kept,) = [c for c in cut["cells"] if c["status"] == "done"]
    assert {k: kept[k] for k in FIGURES} == expected[kept["precision"], kept["delegate"]]
    measured = {key: (attempts, finished) for key, attempts, finished in _attempts(store) if finished}
    again = _validate(tiny_export, synth_dataset, emulated_device, apk, store, "xnnpack,cpu")
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout)
    assert (rerun["ran"], rerun["skipped"], rerun["done"]) == (5, 1, 6)
    assert {(c["precision"], c["delegate"]): {k: c[k] for k in FIGURES} for c in rerun["cells"]} == expected
    after = {key: (attempts, finished) for key, attempts, finished in _attempts(store)}
    assert len(measured) == 1 and all(after[key] == row for key, row in measured.items())  # not measured again


def test_noise_drops_a_trained_models_device_ap_and_fails_the_default_gate(
    emulated_device, faulty_emulated_device, apk: Path, trained_export: tuple[Path, Path], tmp_path: Path
) -> None:
    data, export = trained_export
    store = tmp_path / "results.sqlite"
    clean = _validate(export, data, emulated_device, apk, store)
    assert clean.returncode == 0, clean.stderr
    (exact,) = json.loads(clean.stdout)["cells"]
    assert exact["host_ap"] > 0.3 and exact["mask_ap"] == exact["host_ap"]  # a model with real AP, computed right
    noisy = _validate(export, data, faulty_emulated_device, apk, store)  # its XNNPACK adds noise to every output
    assert noisy.returncode == 1, noisy.stderr
    (cell,) = json.loads(noisy.stdout)["cells"]
    assert cell["status"] == "done" and cell["host_ap"] == exact["host_ap"] and cell["mask_ap"] < cell["host_ap"]
    drop = cell["host_ap_drop"]
    assert drop == pytest.approx(cell["host_ap"] - cell["mask_ap"]) and drop > cell["budget"]["device_ap_drop_max"]
    assert cell["budget"]["device_ap_drop_max"] == pytest.approx(0.001)  # models/blitzmask-tiny/numerics.yaml
    assert cell["failures"] == [f"device AP drop {100 * drop:.2f} > 0.10 points"] and cell["passed"] is False
    gate = run_cli("gate", store, "--json")  # the card's budgets
    assert gate.returncode == 1, gate.stdout + gate.stderr
    checks = json.loads(gate.stdout)["checks"]  # the clean phone's cell, then the noisy one's
    assert [(c["check"], c["file"], c["target"], c["passed"]) for c in checks] == [
        ("device_ap_drop", "tflite-fp32", "BlitzMask Emulated / xnnpack", passed) for passed in (True, False)
    ]
    assert (checks[0]["value"], checks[1]["value"]) == (0, pytest.approx(drop))


def test_an_app_without_tensor_packs_is_refused_in_one_line(
    emulated_device, apk: Path, tiny_export: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    old = write_apk(tmp_path / "old.apk", PACKAGE, APP_VERSION_CODE - 1, "0.2.0")
    old.with_name(old.name + ".json").write_text(json.dumps({"package": PACKAGE, "version_code": APP_VERSION_CODE - 1}))
    phone = AndroidDevice.connect(emulated_device.serial, emulated_device.adb_address, timeout=30)
    phone.sh(f"pm uninstall {PACKAGE}")
    try:
        assert phone.ensure_app(old) == APP_VERSION_CODE - 1
        store = tmp_path / "results.sqlite"
        proc = run_cli(*_args(tiny_export, synth_dataset, emulated_device, store))  # no --apk: the old app stays
    finally:
        phone.ensure_app(apk)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"error: {emulated_device.serial}: the benchmark app is versionCode {APP_VERSION_CODE - 1}; accuracy mode "
        f"needs versionCode {APP_VERSION_CODE} or later: pass --apk android_bench/build/blitzmask-bench.apk "
        "(`make apk`)"
    ]
    assert [(attempts, finished) for _, attempts, finished in _attempts(store)] == [(0, None)] * 3  # all pending


def test_non_finite_device_outputs_fail_their_cell_with_one_line(
    emulated_device, apk: Path, tiny_export: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    """A delegate that returns NaN (fp16 sums that overflow on a GPU) fails its cell, naming the heads; the int8 file,
    whose outputs cannot be NaN, is measured as usual."""
    from tests.support.emulated.device import EmulatedDevice, free_port_pair

    port, adb_port = free_port_pair()
    device = EmulatedDevice(tmp_path / "nan", port=port, adb_port=adb_port, faults={"xnnpack": "nan"})
    device.start()
    try:
        proc = _validate(tiny_export, synth_dataset, device, apk, tmp_path / "results.sqlite")
    finally:
        device.stop()
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    by = {c["precision"]: c for c in out["cells"]}
    assert (out["done"], out["failed"]) == (1, 2) and by["int8"]["status"] == "done"
    for precision in ("fp32", "fp16"):
        assert by[precision]["status"] == "failed"
        heads = "box, coefficients, heatmap, spanning_set"
        assert by[precision]["error"] == f"non-finite outputs (NaN or inf) in {heads} for {IMAGES} of {IMAGES} images"
        lines = [line for line in proc.stderr.splitlines() if f"tflite-{precision} on {device.serial}" in line]
        assert len(lines) == 1 and "non-finite" in lines[0]
    assert "Traceback" not in proc.stderr
