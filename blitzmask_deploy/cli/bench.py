"""`blitzmask devices` and `blitzmask bench`: list benchmark devices and run resumable benchmark sweeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from blitzmask_deploy.cli.common import emit_json, finite, info, open_cli_devices, open_store, split_csv
from blitzmask_deploy.core.errors import BadInput

DEFAULT_APK = Path("android_bench/build/blitzmask-bench.apk")
MAX_THREADS = 1024  # a larger --threads value is a typo


def register(app: typer.Typer) -> None:
    """Add `devices` and `bench` to `app`."""
    app.command("devices")(devices_cmd)
    app.command("bench")(bench_cmd)


def devices_cmd(
    adb: list[str] = typer.Option([], "--adb", help="adb server HOST:PORT (repeatable; default 127.0.0.1:5037)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """List the local host device and every device of the adb server(s)."""
    from blitzmask_deploy.bench.discovery import list_devices

    entries, notes = list_devices(adb or None)
    for note in notes:
        info(note)
    if as_json:
        emit_json({"devices": [e.to_json() for e in entries]})
        return
    print(f"{'serial':<24} {'kind':<6} {'state':<12} {'model':<28} {'android':<8} {'abi':<12} adb_server")
    for e in entries:
        print(
            f"{e.serial:<24} {e.kind:<6} {e.state:<12} {e.model or '-':<28.28} {e.android or '-':<8} "
            f"{e.abi or '-':<12} {e.adb_server or '-'}"
        )


def _temperature(value: float | None) -> float | None:
    """Option callback: a finite temperature, not below absolute zero."""
    if finite(value) is not None and value < -273.15:
        raise typer.BadParameter(f"{value} °C is below absolute zero")
    return value


def _thread_counts(value: str) -> list[int]:
    """'1,4' → [1, 4]; each a thread count from 1 to MAX_THREADS."""
    items = [v.strip() for v in value.split(",")]
    if not all(v.isascii() and v.isdigit() and 0 < int(v) <= MAX_THREADS for v in items):
        raise BadInput(f"--threads expects positive integers up to {MAX_THREADS} separated by commas, got '{value}'")
    return [int(v) for v in items]


def bench_cmd(
    models: list[Path] = typer.Argument(..., help="Export directories (manifest.json) and/or .tflite files."),
    store: Path = typer.Option(..., "--store", help="SQLite result store (created if missing; reruns resume)."),
    device: str = typer.Option("all", "--device", help="'all', 'local' or serials, comma-separated."),
    delegate: str = typer.Option("xnnpack", "--delegate", help="Comma list of cpu,xnnpack,gpu,nnapi,qnn."),
    threads: str = typer.Option("4", "--threads", help="Comma list of CPU thread counts, e.g. 1,4."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed runs before timing."),
    runs: int = typer.Option(100, "--runs", min=1, help="Timed runs per cell."),
    cooldown_c: float | None = typer.Option(
        None,
        "--cooldown-c",
        callback=_temperature,
        help="Before each cell wait until the hottest thermal zone is below this °C.",
    ),
    cooldown_max_s: float = typer.Option(
        300.0, "--cooldown-max-s", min=0, callback=finite, help="Longest cool-down wait per cell."
    ),
    sustained: float = typer.Option(
        0.0, "--sustained", min=0, callback=finite, help="Also run SECONDS at --target-fps."
    ),
    target_fps: float = typer.Option(
        30.0, "--target-fps", min=0.1, callback=finite, help="Frame rate of the sustained run."
    ),
    adb: list[str] = typer.Option([], "--adb", help="adb server HOST:PORT (repeatable; default 127.0.0.1:5037)."),
    apk: Path | None = typer.Option(
        None, "--apk", help=f"Benchmark APK to install when missing/outdated (default {DEFAULT_APK} if built)."
    ),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run cells that failed before again."),
    timeout: float = typer.Option(
        600.0, "--timeout", min=1, callback=finite, help="Seconds allowed for one am instrument call."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Benchmark models × delegates × threads × devices into a resumable SQLite store."""
    from blitzmask_deploy.bench.protocol import DELEGATES
    from blitzmask_deploy.bench.runner import Settings, expand_models, run_sweep

    settings = Settings(
        delegates=split_csv(delegate, set(DELEGATES), "delegate"),
        threads=_thread_counts(threads),
        warmup=warmup,
        runs=runs,
        sustained_s=sustained,
        target_fps=target_fps,
        cooldown_c=cooldown_c,
        cooldown_max_s=cooldown_max_s,
        retry_failed=retry_failed,
        apk=apk if apk is not None else (DEFAULT_APK if DEFAULT_APK.is_file() else None),
    )
    if apk is not None and not apk.is_file():
        raise BadInput(f"APK not found: {apk}")
    refs = expand_models(models)
    devices = open_cli_devices(device, adb, timeout)
    results = open_store(store)
    try:
        sweep = run_sweep(refs, devices, results, settings, progress=not as_json)
    except KeyboardInterrupt:
        info(f"interrupted: {len(results.cells(status='pending'))} cells pending in {store}: rerun to finish")
        raise typer.Exit(130) from None
    counts = sweep.counts(results)
    rows = results.cells(keys=sweep.keys)
    wanted_all = "all" in split_csv(device, what="device")
    absent = _pending_elsewhere(results, refs, {d.serial for d in devices}) if wanted_all else {}
    if as_json:
        emit_json(
            {
                "store": str(store),
                "wall_s": round(sweep.wall_s, 3),
                "ran": sweep.ran,
                "skipped": sweep.skipped,
                **counts,
                "devices_stopped": sweep.gone,
                "cells": [_cell_json(r) for r in rows],
            }
        )
    else:
        print(_table(rows))
    _verdict(sweep.gone, rows, absent, sweep.claimed_elsewhere)


def _pending_elsewhere(results: Any, refs: list, swept: set[str]) -> dict[str, int]:
    """{serial: pending cells} of these models in the store on devices this run did not reach (offline or absent)."""
    shas = {ref.sha256 for ref in refs}
    pending: dict[str, int] = {}
    for row in results.cells(status="pending"):
        if row["model_sha256"] in shas and row["device_serial"] not in swept:
            pending[row["device_serial"]] = pending.get(row["device_serial"], 0) + 1
    return pending


def _verdict(gone: dict[str, str], rows: list[dict], absent: dict[str, int], elsewhere: int = 0) -> None:
    """Exit 1 unless every cell of the sweep is done and no earlier sweep of these models waits for a device: one
    line per device that went away or is not connected (its cells stay pending), one for the cells another bench
    process is measuring and one for the failed cells."""
    for serial, reason in gone.items():
        pending = sum(r["device_serial"] == serial and r["status"] == "pending" for r in rows)
        info(
            f"device {serial} is offline or gone ({' '.join(reason.split())}): {pending} cells pending: rerun to finish"
        )
    for serial, pending in absent.items():
        info(f"device {serial} is not connected: {pending} cells of these models pending: connect it and rerun")
    if elsewhere:
        info(f"{elsewhere} cells are being measured by another bench process on this store: rerun when it ends")
    failed = sum(r["status"] == "failed" for r in rows)
    if failed:
        info(f"{failed} cells failed (errors in the table): --retry-failed runs them again")
    if gone or absent or any(r["status"] != "done" for r in rows):
        raise typer.Exit(1)


_JSON_KEYS = (
    "cell_key", "status", "model_name", "model_sha256", "variant", "precision", "device_serial", "device_model",
    "delegate", "delegate_applied", "threads", "warmup", "runs", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms",
    "min_ms", "max_ms", "fps", "init_ms", "first_ms", "peak_memory_kb", "sustained_fps", "throttled", "error",
)  # fmt: skip


def _cell_json(row: dict) -> dict:
    return {k: row[k] for k in _JSON_KEYS}


def _table(rows: list[dict]) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    lines = [
        f"{'model':<16} {'device':<20} {'delegate':<9} {'thr':>3} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'fps':>8} {'init ms':>8} status"
    ]
    for r in rows:
        lines.append(
            f"{r['model_name']:<16.16} {r['device_serial']:<20.20} {r['delegate']:<9} {r['threads']:>3} "
            f"{ms(r['p50_ms']):>8} {ms(r['p90_ms']):>8} {ms(r['p99_ms']):>8} {ms(r['fps']):>8} "
            f"{ms(r['init_ms']):>8} {r['status']}" + (f" ({r['error']})" if r["error"] else "")
        )
    return "\n".join(lines)
