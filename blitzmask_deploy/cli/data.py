"""`blitzmask data synth`: procedural COCO dataset (issue: foundation)."""

from __future__ import annotations

from pathlib import Path

import typer

from blitzmask_deploy.cli.common import emit_json, info


def register(app: typer.Typer) -> None:
    """Add the `data` command group to `app`."""
    group = typer.Typer(help="Datasets: make a procedural COCO dataset.", no_args_is_help=True)
    group.command("synth")(synth_cmd)
    app.add_typer(group, name="data")


def synth_cmd(
    out: Path = typer.Argument(..., help="Output directory (images/{train,val}, annotations/instances_*.json)."),
    train: int = typer.Option(200, "--train", min=0, help="Number of training images."),
    val: int = typer.Option(50, "--val", min=0, help="Number of validation images."),
    size: int = typer.Option(320, "--size", min=32, help="Image side in pixels (square images)."),
    seed: int = typer.Option(0, "--seed", help="Seed; train and val use disjoint streams derived from it."),
    workers: int = typer.Option(0, "--workers", min=0, help="Worker processes (0 = up to 2)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Write a COCO instance-segmentation dataset of textured shapes (6 classes, RLE masks)."""
    import time

    from blitzmask_deploy.data.synthetic import generate_dataset, summarize_dataset

    start = time.perf_counter()
    generate_dataset(out, train=train, val=val, size=size, seed=seed, progress=not quiet, workers=workers or None)
    seconds = time.perf_counter() - start
    summary = summarize_dataset(out)
    summary["seconds"] = round(seconds, 3)
    summary["images_per_s"] = round((train + val) / seconds, 1) if seconds > 0 else None
    if as_json:
        emit_json(summary)
    else:
        info(f"wrote {out}: {train} train + {val} val images at {size}x{size} in {seconds:.1f} s")
        for split, s in summary["splits"].items():
            info(f"  {split}: {s['images']} images, {s['instances']} instances (small/medium/large {s['sizes']})")
