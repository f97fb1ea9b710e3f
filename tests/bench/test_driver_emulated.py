"""The adb driver end to end against the emulated device (D1's `emulated_device`): install, push, run, sweep,
unplug mid-sweep and resume. Skipped when the emulated device is not available here."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from blitzmask_deploy.bench.adb import AndroidDevice
from blitzmask_deploy.bench.discovery import list_devices
from blitzmask_deploy.bench.protocol import PACKAGE
from blitzmask_deploy.bench.runner import ModelRef, Settings, run_sweep
from blitzmask_deploy.bench.store import ResultStore
from tests.conftest import cli_command, run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def apk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dummy benchmark APK (versionCode 1) with its build sidecar."""
    from tests.support.fake_apk import write_apk

    path = write_apk(tmp_path_factory.mktemp("apk") / "blitzmask-bench.apk", PACKAGE, 1, "0.1.0")
    path.with_name(path.name + ".json").write_text(json.dumps({"package": PACKAGE, "version_code": 1}))
    return path


@pytest.fixture()
def hostile_model(bench_tflite: Path, tmp_path: Path) -> ModelRef:
    from blitzmask_deploy.core.artifacts import sha256_file

    path = tmp_path / "it's a $(model); `x`.tflite"
    path.write_bytes(bench_tflite.read_bytes())
    return ModelRef(path, sha256_file(path), "hostile")


def test_devices_lists_the_emulated_phone(emulated_device) -> None:
    entries, notes = list_devices([emulated_device.adb_address])
    (phone,) = [e for e in entries if e.serial == emulated_device.serial]
    assert notes == [] and phone.kind == "adb" and phone.state == "device"
    assert (
        phone.model == "BlitzMask Emulated"
        and phone.android
        and phone.abi
        and phone.adb_server == emulated_device.adb_address
    )
    out = run_cli("devices", "--adb", emulated_device.adb_address, "--json", timeout=60)
    assert out.returncode == 0, out.stderr
    serials = {d["serial"]: d["kind"] for d in json.loads(out.stdout)["devices"]}
    assert serials == {"local": "local", emulated_device.serial: "adb"}


def test_driver_installs_pushes_and_runs(emulated_device, apk: Path, hostile_model: ModelRef) -> None:
    dev = AndroidDevice.connect(emulated_device.serial, emulated_device.adb_address, timeout=30)
    dev.sh(f"pm uninstall {PACKAGE}")
    assert dev.installed_version_code() is None
    assert dev.ensure_app(apk) == 1 and dev.installed_version_code() == 1
    info = dev.info()
    assert info["model"] == "BlitzMask Emulated" and info["fingerprint"]
    assert "cpu-thermal" in dev.thermal() and dev.battery().get("level") is not None
    remote = dev.prepare(hostile_model.path, hostile_model.sha256)
    assert remote.endswith(f"/{hostile_model.sha256}.tflite")
    assert dev.remote_sha256(remote) == hostile_model.sha256
    res = dev.run(remote, cell_key="ab" * 16, delegate="xnnpack", threads=1, warmup=1, runs=5)
    assert res["status"] == "ok" and len(res["runs_ms"]) == 5 and res["device"]["model"] == "BlitzMask Emulated"
    gpu = dev.run(remote, cell_key="cd" * 16, delegate="gpu", threads=1, warmup=0, runs=1)
    assert gpu["status"] == "unsupported_delegate"


def test_unplug_mid_sweep_then_rerun_completes(
    emulated_device, apk: Path, hostile_model: ModelRef, tmp_path: Path
) -> None:
    store = ResultStore(tmp_path / "r.sqlite")
    settings = Settings(delegates=["cpu", "xnnpack"], threads=[1, 2], warmup=1, runs=150, apk=apk)

    def unplug_after_first_cell() -> None:
        deadline = time.monotonic() + 120
        while not store.cells(status="done") and time.monotonic() < deadline:
            time.sleep(0.05)
        emulated_device.unplug()

    killer = threading.Thread(target=unplug_after_first_cell)
    killer.start()
    try:
        dev = AndroidDevice.connect(
            emulated_device.serial, emulated_device.adb_address, timeout=30, instrument_timeout=120
        )
        sweep = run_sweep([hostile_model], [dev], store, settings, progress=False)
    finally:
        killer.join()
        emulated_device.replug()
    counts = sweep.counts(store)
    assert emulated_device.serial in sweep.gone and counts["pending"] >= 1 and counts["done"] >= 1
    assert counts["done"] + counts["pending"] == 4
    done_before = {r["cell_key"]: r["finished"] for r in store.cells(status="done")}
    device = AndroidDevice.connect(emulated_device.serial, emulated_device.adb_address, timeout=30)
    again = run_sweep([hostile_model], [device], store, settings, progress=False)
    assert not again.gone and again.skipped == len(done_before)
    rows = store.cells()
    assert len(rows) == 4 and {r["status"] for r in rows} == {"done"}
    assert all(r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in rows)
    assert {r["cell_key"]: r["finished"] for r in rows if r["cell_key"] in done_before} == done_before


def _bench_cmd(device, apk: Path, model: Path, store: Path, *settings: str) -> list[str]:
    """`blitzmask bench MODEL` on the emulated `device` with `settings`, JSON out."""
    return cli_command("bench", model, "--device", device.serial, "--adb", device.adb_address, "--apk", apk, *settings,
                       "--store", store, "--json")  # fmt: skip


def test_cli_sweep_on_emulated_device(emulated_device, apk: Path, bench_tflite: Path, tmp_path: Path) -> None:
    cmd = _bench_cmd(emulated_device, apk, bench_tflite, tmp_path / "r.sqlite", "--delegate", "xnnpack,gpu",
                     "--threads", "1", "--warmup", "1", "--runs", "10")  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ})
    assert out.returncode == 1, out.stderr  # the gpu cell failed: exit 1, not 0
    report = json.loads(out.stdout)
    assert (report["done"], report["failed"], report["pending"]) == (1, 1, 0)
    by_delegate = {c["delegate"]: c for c in report["cells"]}
    assert by_delegate["xnnpack"]["p90_ms"] > 0 and by_delegate["xnnpack"]["device_model"] == "BlitzMask Emulated"
    assert by_delegate["gpu"]["status"] == "failed"


def _done_cells(store: Path) -> list[dict]:
    """The done cells, through a connection closed again at once (the bench process writes the store meanwhile)."""
    results = ResultStore(store)
    try:
        return results.cells(status="done")
    finally:
        results.close()


def test_cli_unplug_exits_1_and_rerun_finishes(emulated_device, apk: Path, bench_tflite: Path, tmp_path: Path) -> None:
    store = tmp_path / "r.sqlite"
    cmd = _bench_cmd(emulated_device, apk, bench_tflite, store, "--delegate", "cpu,xnnpack", "--threads", "1,2",
                     "--warmup", "0", "--runs", "150")  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if store.exists() and _done_cells(store):
                    break
            except sqlite3.OperationalError:  # the table is being created
                pass
            time.sleep(0.05)
        emulated_device.unplug()
        out, err = proc.communicate(timeout=120)
    finally:
        emulated_device.replug()
    assert proc.returncode == 1, err
    report = json.loads(out)
    assert report["pending"] >= 1 and emulated_device.serial in report["devices_stopped"]
    assert f"{report['pending']} cells pending: rerun to finish" in err
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    final = json.loads(again.stdout)
    assert (final["done"], final["pending"], final["skipped"]) == (4, 0, report["done"])
    assert len(ResultStore(store).cells()) == 4
