"""`blitzmask data synth | import | check`: make, convert and check COCO datasets."""

from __future__ import annotations

from pathlib import Path

import typer

from blitzmask_deploy.cli.common import emit_json, emit_verdict, info


def register(app: typer.Typer) -> None:
    """Add the `data` command group to `app`."""
    group = typer.Typer(
        help="Datasets: make a procedural COCO dataset, import labelme / VOC / YOLO data, check a dataset.",
        no_args_is_help=True,
    )
    group.command("synth")(synth_cmd)
    group.command("import")(import_cmd)
    group.command("check")(check_cmd)
    app.add_typer(group, name="data")


def synth_cmd(
    out: Path = typer.Argument(..., help="Output directory (images/{train,val}, annotations/instances_*.json)."),
    train: int = typer.Option(200, "--train", min=0, help="Number of training images."),
    val: int = typer.Option(50, "--val", min=0, help="Number of validation images."),
    size: int = typer.Option(320, "--size", min=32, help="Image side in pixels (square images)."),
    seed: int = typer.Option(0, "--seed", help="Seed; train and val use disjoint streams derived from it."),
    workers: int = typer.Option(0, "--workers", min=0, help="Worker processes (0 = up to 2)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT when it is not empty."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Write a COCO instance-segmentation dataset of textured shapes (6 classes, RLE masks)."""
    import time

    from blitzmask_deploy.core.folders import check_output_folder
    from blitzmask_deploy.data.synthetic import generate_dataset, summarize_dataset

    check_output_folder(out, overwrite)
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


def import_cmd(
    src: Path = typer.Argument(..., help="The folder to import (labelme JSONs, a VOC tree, or a YOLO tree)."),
    out: Path = typer.Argument(..., help="Output dataset directory (images/{train,val}, annotations/)."),
    fmt: str = typer.Option(..., "--from", help="Source format: labelme, voc or yolo."),
    val_fraction: float = typer.Option(
        0.2, "--val-fraction", min=0.0, max=1.0, help="Share of images for val when the source has no split."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT when it exists and is not empty."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary object on stdout."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar (shown only on a terminal anyway)."),
) -> None:
    """Convert a labelme, Pascal VOC or YOLO segmentation dataset into this project's COCO layout."""
    from blitzmask_deploy.data.importers import import_dataset

    summary = import_dataset(
        fmt, src, out, val_fraction=val_fraction, overwrite=overwrite, progress=False if quiet else None
    )
    for what, count in summary["skipped"].items():
        info(f"skipped {count} {what}")
    if as_json:
        emit_json(summary)
        return
    splits = ", ".join(f"{s} {v['images']} images / {v['instances']} instances" for s, v in summary["splits"].items())
    how = "by --val-fraction" if summary["split_from"] == "val-fraction" else "as the source splits them"
    info(f"wrote {out}: {splits} ({how})")
    for cat in summary["categories"]:
        info(f"  {cat['id']:>4}  {cat['name']}: {cat['instances']} instances")


def check_cmd(
    dataset: Path = typer.Argument(..., help="Dataset directory (annotations/instances_{train,val}.json, images/)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Check a dataset: figures per split and class, and every problem found (exit 1 when there is one)."""
    from blitzmask_deploy.data.check import check_dataset

    emit_verdict(check_dataset(dataset), as_json)
