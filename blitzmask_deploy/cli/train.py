"""`blitzmask train`: train a variant from scratch (EMA, warm-up + cosine, AMP on CUDA, torchrun DDP, resume)."""

from __future__ import annotations

from pathlib import Path

import typer

from blitzmask_deploy.cli.common import default, emit_json, existing_path
from blitzmask_deploy.train.config import TrainConfig

_RECIPE = "(default: the recipe for this hardware, printed at start)"


def register(app: typer.Typer) -> None:
    """Add `train` to `app`."""
    app.command("train")(train_cmd)


def train_cmd(
    data: Path = typer.Option(..., "--data", help="COCO dataset directory (train and val splits)."),
    model: str = typer.Option(..., "--model", help="Variant, e.g. blitzmask-tiny (see `blitzmask models`)."),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Run directory: last.pt, best.pt, metrics.json (holding a run already: --resume or --overwrite).",
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="Train for this many epochs."),
    minutes: float | None = typer.Option(None, "--minutes", help="Train for this many minutes (schedule by time)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help=f"Global batch size {_RECIPE}."),
    lr: float | None = typer.Option(None, "--lr", help=f"Peak learning rate {_RECIPE}."),
    optimizer: str | None = typer.Option(
        None, "--optimizer", help=f"adamw, sgd, or muon (Muon on the inner convs, AdamW on the rest) {_RECIPE}."
    ),
    input_size: int = typer.Option(
        default(TrainConfig, "input_size"), "--input-size", help="Square training/eval input size (multiple of 32)."
    ),
    resume: bool = typer.Option(default(TrainConfig, "resume"), "--resume", help="Continue exactly from OUT/last.pt."),
    overwrite: bool = typer.Option(
        default(TrainConfig, "overwrite"),
        "--overwrite",
        help="Start over in an OUT that holds an earlier run (its last.pt, best.pt and metrics.json are deleted).",
    ),
    workers: int | None = typer.Option(None, "--workers", help=f"DataLoader worker processes {_RECIPE}."),
    seed: int = typer.Option(default(TrainConfig, "seed"), "--seed", help="Seed of init, shuffling and augmentation."),
    mosaic: float = typer.Option(
        default(TrainConfig, "mosaic"), "--mosaic", help="Probability that a training sample is a 2×2 mosaic."
    ),
    close_mosaic: float = typer.Option(
        default(TrainConfig, "close_mosaic"),
        "--close-mosaic",
        help="No mosaics in epochs starting in this last fraction of training.",
    ),
    threads: int | None = typer.Option(None, "--threads", help=f"Torch threads per process {_RECIPE}."),
    cache: bool = typer.Option(
        default(TrainConfig, "cache"),
        "--cache/--no-cache",
        help="Keep decoded training images in RAM (shared by the workers) when they fit.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the final metrics as one JSON object."),
) -> None:
    """Train VARIANT on DIR; val mask AP of the EMA model goes to OUT/metrics.json."""
    existing_path(data, "dataset")
    from blitzmask_deploy.train.trainer import train

    cfg = TrainConfig(
        data=data,
        model=model,
        out=out,
        epochs=epochs,
        minutes=minutes,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        input_size=input_size,
        resume=resume,
        overwrite=overwrite,
        workers=workers,
        seed=seed,
        mosaic=mosaic,
        close_mosaic=close_mosaic,
        threads=threads,
        cache=cache,
    )
    metrics = train(cfg)
    if not metrics:  # a non-zero torchrun rank
        return
    if as_json:
        emit_json(metrics)
    else:
        keys = ("mask_ap", "mask_ap50", "box_ap", "epochs", "steps", "minutes", "images_per_s")
        print("  ".join(f"{k}={metrics.get(k)}" for k in keys))
