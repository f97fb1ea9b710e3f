"""`blitzmask demo`: the whole pipeline on synthetic data, resumable, ending with report.html."""

from __future__ import annotations

from pathlib import Path

import typer

from blitzmask_deploy.cli.common import default, emit_json
from blitzmask_deploy.demo import DemoConfig


def register(app: typer.Typer) -> None:
    """Add `demo` to `app`."""
    app.command("demo")(demo_cmd)


def demo_cmd(
    out: Path = typer.Option(
        default(DemoConfig, "out"), "--out", help="Directory for data, checkpoint, exports, results."
    ),
    minutes: float = typer.Option(default(DemoConfig, "minutes"), "--minutes", help="Training time budget in minutes."),
    train_images: int = typer.Option(
        default(DemoConfig, "train_images"), "--train-images", help="Synthetic training images."
    ),
    val_images: int = typer.Option(
        default(DemoConfig, "val_images"), "--val-images", help="Synthetic validation images."
    ),
    size: int = typer.Option(
        default(DemoConfig, "size"), "--size", help="Image and model input size (multiple of 32)."
    ),
    calib_images: int = typer.Option(
        default(DemoConfig, "calib_images"), "--calib-images", help="Calibration images for int8."
    ),
    runs: int = typer.Option(default(DemoConfig, "runs"), "--runs", help="Timed runs per benchmark cell."),
    adb: list[str] = typer.Option(
        [], "--adb", help="adb server HOST:PORT to look for devices on, instead of the default (repeatable)."
    ),
    skip_bench: bool = typer.Option(default(DemoConfig, "skip_bench"), "--skip-bench", help="Skip the benchmark step."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Synthetic data → train blitzmask-tiny → export → validate → bench (local + adb) → report; re-runs reuse steps."""
    from blitzmask_deploy.demo import run_demo

    result = run_demo(
        DemoConfig(
            out=out,
            minutes=minutes,
            train_images=train_images,
            val_images=val_images,
            size=size,
            calib_images=calib_images,
            runs=runs,
            adb=adb,
            skip_bench=skip_bench,
        )
    )
    if as_json:
        emit_json(result.to_json())
    else:
        print(f"report: {result.report.resolve()}")
