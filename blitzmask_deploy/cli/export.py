"""`blitzmask export CKPT --out DIR`: TFLite fp32/fp16/int8 and ONNX files plus manifest.json."""

from __future__ import annotations

from pathlib import Path

import typer

from blitzmask_deploy.cli.common import emit_json, existing_path, info, split_csv
from blitzmask_deploy.core.artifacts import EXPORT_FORMATS


def register(app: typer.Typer) -> None:
    """Add `export` to `app`."""
    app.command("export")(export_cmd)


def export_cmd(
    ckpt: Path = typer.Argument(..., help="Checkpoint (.pt) from `blitzmask train`."),
    out: Path = typer.Option(
        ..., "--out", help="Export directory: created, or replaced whole once the new export is complete."
    ),
    formats: str = typer.Option(",".join(EXPORT_FORMATS), "--formats", help="Comma list of fp32, fp16, int8, onnx."),
    calib: Path | None = typer.Option(
        None, "--calib", help="Calibration images for int8: a COCO dataset dir (uses images/train) or image folder."
    ),
    calib_images: int = typer.Option(128, "--calib-images", min=1, help="Number of calibration images for int8."),
    calib_algorithm: str = typer.Option(
        "min_max",
        "--calib-algorithm",
        help="How int8 weight scales are chosen: min_max (each output channel's weight range) or mse "
        "(ai-edge-quantizer's MSE scale, 0.054 × the channel's RMS weight, clipping weights beyond about 6.9 RMS; "
        "ai-edge-quantizer has it for conv, depthwise and fully-connected weights only, which get it while the "
        "other ops keep min_max). Activation ranges are the calibrated min/max with either.",
    ),
    calib_headroom: float | None = typer.Option(
        None,
        "--calib-headroom",
        help="Widen every calibrated int8 activation range by this factor (1 to 16; 1 = the calibrated min/max, "
        "the default without --int8-budget). Wider ranges clip fewer values of unseen images at a coarser step. "
        "With --int8-budget and no value, the search tries 1, 1.25, 1.5 and 2 in full int8 and keeps the best.",
    ),
    int8_budget: float | None = typer.Option(
        None,
        "--int8-budget",
        help="Mixed precision: the cheapest int8 recipe (ops moved to a16w8, then float) whose host mask-AP drop "
        "vs the checkpoint on --calib's val split is at most this many AP points.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as one JSON object on stdout."),
) -> None:
    """Export a checkpoint to TFLite (fp32, fp16, full-int8) and ONNX, with a manifest of every file."""
    existing_path(ckpt, "checkpoint")
    chosen = split_csv(formats, set(EXPORT_FORMATS), "format")
    if calib is not None:
        existing_path(calib, "calibration data")
    from blitzmask_deploy.export.pipeline import export_checkpoint

    manifest = export_checkpoint(
        ckpt,
        out,
        formats=chosen,
        calib=calib,
        calib_images=calib_images,
        calib_algorithm=calib_algorithm,
        calib_headroom=calib_headroom,
        int8_budget=int8_budget,
    )
    if as_json:
        emit_json(manifest.model_dump())
        return
    for f in manifest.files:
        io = ", ".join(f"{t.name} {t.dtype}{t.shape}" for t in f.outputs)
        info(f"{f.name:<12} {f.file:<18} {f.bytes / 1e6:7.2f} MB  {f.inputs[0].dtype}{f.inputs[0].shape} -> {io}")
        if f.activation_headroom not in (None, 1.0):
            info(f"{'':<12} activation ranges widened {f.activation_headroom:g}×")
        if f.op_precisions:
            moved = ", ".join(f"{o.module or o.op} {o.precision}" for o in f.op_precisions)
            info(f"{'':<12} {100 * f.int8_mac_share:.1f} % of MACs in full int8; not full int8: {moved}")
    print(out / "manifest.json")
