"""`blitzmask validate`: mask AP of a checkpoint, or of every file in an export directory."""

from __future__ import annotations

from pathlib import Path

import typer

from blitzmask_deploy.cli.common import emit_verdict, existing_path


def register(app: typer.Typer) -> None:
    """Add `validate` to `app`."""
    app.command("validate")(validate_cmd)


def validate_cmd(
    model: Path = typer.Argument(..., help="A checkpoint (.pt) or an export directory with manifest.json."),
    data: Path = typer.Option(..., "--data", help="COCO dataset directory (uses its val split)."),
    max_images: int = typer.Option(0, "--max-images", min=0, help="Evaluate at most this many val images (0 = all)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Mask AP (and drop, parity, host latency for exports) on the dataset's val split."""
    existing_path(model, "model")
    existing_path(data, "dataset")
    if model.is_dir():
        from blitzmask_deploy.validate.export_dir import run_validate_export

        result = run_validate_export(model, data, max_images=max_images)
    else:
        from blitzmask_deploy.validate.checkpoint import validate_checkpoint

        result = validate_checkpoint(model, data, max_images=max_images)
    emit_verdict(result, as_json)
