"""`blitzmask devices` and `blitzmask bench` on the local device: JSON output, resumable sweeps, usage errors."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from tests.conftest import cli_command, run_cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    """No adb server: a port nothing listens on."""
    return {**os.environ, "ANDROID_ADB_SERVER_PORT": str(_free_port())}


@pytest.fixture(scope="module")
def model(bench_tflite: Path) -> Path:
    """The cached 64×64 conv-net .tflite of the shared `bench_tflite` fixture."""
    return bench_tflite


def _rows(store: Path) -> list[dict]:
    conn = sqlite3.connect(store)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM cells ORDER BY rowid")]
    finally:
        conn.close()


def test_devices_json_without_adb_server_lists_local_fast() -> None:
    env = _env()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = run_cli("devices", "--json", timeout=60, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # wall time varies with load
    assert out.returncode == 0, out.stderr
    (local,) = json.loads(out.stdout)["devices"]
    assert local["serial"] == "local" and local["kind"] == "local" and local["state"] == "device"
    assert set(local) == {"serial", "kind", "state", "model", "soc", "android", "abi", "adb_server"}
    assert len(out.stderr.strip().splitlines()) == 1 and "no adb server" in out.stderr
    assert cpu_s < 1.0, cpu_s
    code = "import sys\nfrom blitzmask_deploy.cli.app import main\nsys.argv=['blitzmask','devices']\n"
    code += "try:\n    main()\nexcept SystemExit:\n    pass\n"
    code += "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert probe.stdout.strip().splitlines()[-1] == "[]", probe.stdout + probe.stderr


def test_bench_local_stores_percentiles_per_cell(model: Path, tmp_path: Path) -> None:
    store = tmp_path / "r.sqlite"
    args = ["bench", model, "--device", "local", "--delegate", "cpu,xnnpack,gpu", "--threads", "1,2",
            "--warmup", "1", "--runs", "20", "--store", store, "--json"]  # fmt: skip
    out = run_cli(*args, env=_env())
    assert out.returncode == 1, out.stderr  # the gpu cells failed (no GPU delegate on the host): a failed check
    report = json.loads(out.stdout)
    assert (report["done"], report["failed"], report["pending"], report["ran"]) == (4, 2, 0, 6)
    for cell in report["cells"]:
        if cell["delegate"] == "gpu":
            assert cell["status"] == "failed" and "not available" in cell["error"]
        else:
            assert cell["status"] == "done" and 0 < cell["p50_ms"] <= cell["p90_ms"] <= cell["p99_ms"]
            assert cell["runs"] == 20 and cell["fps"] > 0 and cell["init_ms"] > 0
    rows = _rows(store)
    assert len(rows) == 6 and all(len(json.loads(r["runs_ms"])) == 20 for r in rows if r["status"] == "done")
    again = run_cli(*args, env=_env())
    assert json.loads(again.stdout)["ran"] == 0 and len(_rows(store)) == 6
    table = run_cli(*args[:-1], env=_env())
    assert table.returncode == 1 and "p50 ms" in table.stdout and "xnnpack" in table.stdout


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_sweep_resumes_without_duplicates(model: Path, tmp_path: Path, sig: signal.Signals) -> None:
    store = tmp_path / "r.sqlite"
    args = cli_command("bench", model, "--device", "local", "--delegate", "cpu,xnnpack", "--threads", "1,2",
                       "--warmup", "0", "--runs", "1000", "--store", store, "--json")  # fmt: skip
    # as from a terminal: a shell starting background jobs (e.g. CI) leaves SIGINT ignored, which children inherit
    reset_sigint = partial(signal.signal, signal.SIGINT, signal.SIG_DFL)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), preexec_fn=reset_sigint)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if store.exists() and any(r["status"] == "done" for r in _rows(store)):
                break
        except sqlite3.OperationalError:  # the table is being created
            pass
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and b"cells pending" in err and b"Traceback" not in err
    first = _rows(store)
    assert len(first) == 4 and 1 <= sum(r["status"] == "done" for r in first) < 4
    out = subprocess.run(args, capture_output=True, text=True, timeout=300, env=_env())
    assert out.returncode == 0, out.stderr
    rows = _rows(store)
    assert len(rows) == 4 and len({r["cell_key"] for r in rows}) == 4 and {r["status"] for r in rows} == {"done"}
    done_first = {r["cell_key"]: r["finished"] for r in first if r["status"] == "done"}
    assert {r["cell_key"]: r["finished"] for r in rows if r["cell_key"] in done_first} == done_first
    assert json.loads(out.stdout)["skipped"] == len(done_first)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--delegate", "tpu"], "unknown delegate tpu"),
        (["--threads", "0"], "--threads expects positive integers"),
        (["--device", "nosuch"], "no device 'nosuch'"),
        (["--adb", "nohostport"], "--adb expects HOST:PORT"),
        (["--apk", "/nonexistent.apk"], "APK not found"),
    ],
)
def test_bench_bad_input_is_one_line_exit_2(model: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    out = run_cli("bench", model, "--store", tmp_path / "r.sqlite", *extra, timeout=60, env=_env())
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr, out.stderr


def test_bench_missing_model_is_exit_2(tmp_path: Path) -> None:
    out = run_cli("bench", tmp_path / "nope.tflite", "--store", tmp_path / "r.sqlite", timeout=60, env=_env())
    assert out.returncode == 2 and out.stderr.strip() == f"error: model not found: {tmp_path / 'nope.tflite'}"


def test_pending_cells_of_a_device_that_is_not_connected_exit_1(model: Path, tmp_path: Path) -> None:
    """An earlier sweep left cells of these models pending on a phone that is now absent: `--device all` says so."""
    from blitzmask_deploy.bench.store import CellSpec, ResultStore
    from blitzmask_deploy.core.artifacts import sha256_file

    store = tmp_path / "r.sqlite"
    results = ResultStore(store)
    results.add_pending([CellSpec(str(model), sha256_file(model), "m", None, None, "PHONE1", "adb", "Acme", "fp",
                                  "gpu", 4, 0, 5)])  # fmt: skip
    results.close()
    out = run_cli("bench", model, "--delegate", "cpu", "--threads", "1", "--runs", "3", "--store", store, env=_env())
    assert out.returncode == 1, out.stderr
    assert "device PHONE1 is not connected: 1 cells of these models pending" in out.stderr
    local_only = run_cli("bench", model, "--device", "local", "--delegate", "cpu", "--threads", "1", "--runs", "3",
                         "--store", store, env=_env())  # fmt: skip
    assert local_only.returncode == 0, local_only.stderr  # the user asked for the host only


def test_a_file_that_is_not_a_store_is_refused_untouched(model: Path, tmp_path: Path) -> None:
    store = tmp_path / "r.sqlite"
    store.write_text("runs,p50\n1,2.5\n")
    out = run_cli("bench", model, "--device", "local", "--store", store, timeout=60, env=_env())
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == f"error: {store} is not a BlitzMask result store (not an SQLite file)"
    assert store.read_text() == "runs,p50\n1,2.5\n" and sorted(p.name for p in tmp_path.iterdir()) == ["r.sqlite"]


def test_a_store_locked_by_another_process_is_one_line_after_the_timeout(model: Path, tmp_path: Path) -> None:
    from blitzmask_deploy.bench.store import ResultStore

    store = tmp_path / "r.sqlite"
    ResultStore(store).close()
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        args = ["bench", model, "--device", "local", "--delegate", "cpu", "--threads", "1", "--runs", "3"]
        out = run_cli(*args, "--store", store, timeout=60, env={**_env(), "BLITZMASK_STORE_TIMEOUT": "0.5"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == f"error: {store} is locked by another process (waited 0.5 s)"
    assert _rows(store) == []


def test_a_model_whose_io_differs_from_its_manifest_is_refused_before_timing(
    tiny_export: Path, model: Path, tmp_path: Path
) -> None:
    from blitzmask_deploy.bench.runner import expand_models
    from blitzmask_deploy.core.artifacts import sha256_file

    assert len(expand_models([tiny_export])) == 3  # the genuine files agree with their manifest
    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    shutil.copyfile(model, export / "model_fp32.tflite")  # right sha256 in the manifest, someone else's graph
    manifest = json.loads((export / "manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["file"] == "model_fp32.tflite")
    entry.update(sha256=sha256_file(model), bytes=model.stat().st_size)
    (export / "manifest.json").write_text(json.dumps(manifest))
    store = tmp_path / "r.sqlite"
    out = run_cli("bench", export, "--device", "local", "--store", store, timeout=60, env=_env())
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"error: {export / 'model_fp32.tflite'} does not match its manifest: input 0 "), line
    assert not store.exists()
