"""`blitzmask demo`: the whole pipeline on synthetic data, resumable, ending with report.html."""

from __future__ import annotations

from pathlib import Path

import typer

from blitzmask_deploy.cli.common import emit_json


def register(app: typer.Typer) -> None:
    """Add `demo` to `app`."""
    app.command("demo")(demo_cmd)


def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Directory for data, checkpoint, exports, results."),
    minutes: float = typer.Option(8.0, "--minutes", help="Training time budget in minutes."),
    train_images: int = typer.Option(2000, "--train-images", help="Synthetic training images."),
    val_images: int = typer.Option(200, "--val-images", help="Synthetic validation images."),
    size: int = typer.Option(320, "--size", help="Image and model input size (multiple of 32)."),
    calib_images: int = typer.Option(64, "--calib-images", help="Calibration images for int8."),
    runs: int = typer.Option(50, "--runs", help="Timed runs per benchmark cell."),
    adb: list[str] = typer.Option([], "--adb", help="Extra adb server HOST:PORT to look for devices on (repeatable)."),
    skip_bench: bool = typer.Option(False, "--skip-bench", help="Skip the benchmark step."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Synthetic data → train blitzmask-tiny → export → validate → bench (local + adb) → report; re-runs reuse steps."""
    from blitzmask_deploy.demo import DemoConfig, run_demo
    from blitzmask_deploy.errors import BadInput

    if size % 32 or size < 64:
        raise BadInput("--size must be a multiple of 32 and ≥ 64")
    if minutes <= 0 or runs < 1 or calib_images < 1:
        raise BadInput("--minutes must be > 0, --runs and --calib-images ≥ 1")
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
