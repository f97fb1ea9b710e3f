"""`blitzmask predict`: overlay PNGs and COCO results for images, from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from blitzmask_deploy.cli.common import emit_json, existing_path, finite, info


def register(app: typer.Typer) -> None:
    """Add `predict` to `app`."""
    app.command("predict")(predict_cmd)


def predict_cmd(
    model: Path = typer.Argument(..., help="A checkpoint (.pt) from `blitzmask train`."),
    images: list[Path] = typer.Argument(..., help="Image files (PNG, JPEG, ...)."),
    out: Path = typer.Option(..., "--out", help="Output directory: <stem>.png overlays and predictions.json."),
    score_threshold: float = typer.Option(
        0.3, "--score-threshold", min=0, max=1, callback=finite, help="Keep instances scoring at least this."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a summary as one JSON object."),
) -> None:
    """Predict instance masks for IMAGES and draw them."""
    existing_path(model, "model")
    from blitzmask_deploy.inference.predict import predict_images

    summary = predict_images(model, images, out, score_threshold=score_threshold)
    if as_json:
        emit_json(summary)
    else:
        info(f"{summary['instances']} instances in {len(images)} images → {out}")
