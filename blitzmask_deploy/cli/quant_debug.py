"""`blitzmask quant-debug EXPORT_DIR --data DIR`: where the int8 file loses accuracy, op by op."""

from __future__ import annotations

from pathlib import Path

import typer

from blitzmask_deploy.cli.common import emit_json, existing_path


def register(app: typer.Typer) -> None:
    """Add `quant-debug` to `app`."""
    app.command("quant-debug")(quant_debug_cmd)


def quant_debug_cmd(
    export_dir: Path = typer.Argument(..., help="Export directory with tflite-fp32 and tflite-int8 files."),
    data: Path = typer.Option(
        ..., "--data", help="A COCO dataset dir (images from images/train, AP on the val split) or an image folder."
    ),
    images: int = typer.Option(32, "--images", min=1, help="Images run through both files."),
    top: int = typer.Option(5, "--top", min=0, help="Worst ops (by SNR) re-quantised in float to measure their AP."),
    as_json: bool = typer.Option(False, "--json", help="Print quant_debug.json as one JSON object on stdout."),
) -> None:
    """Per quantised op: SNR, cosine, max and mean |Δ| against fp32, module, MAC share; AP kept back by the worst."""
    existing_path(export_dir, "export directory")
    existing_path(data, "data")
    from blitzmask_deploy.export.quant_debug import run_quant_debug

    result = run_quant_debug(export_dir, data, images=images, top=top)
    if as_json:
        emit_json(result.to_json())
        return
    if result.reference_mask_ap is not None:
        print(
            f"mask AP: {result.reference} {100 * result.reference_mask_ap:.2f}, {result.file} "
            f"{100 * result.int8_mask_ap:.2f} (host, {result.dataset} val)"
        )
    print(
        f"{'op':>4} {'type':<18} {'module':<36} {'SNR dB':>8} {'cosine':>8} {'max |Δ|':>9} {'MACs %':>7} {'drop fp':>8}"
    )
    for op in result.worst(len(result.ops)):
        kept = "" if op.ap_drop_kept_fp32 is None else f"{100 * op.ap_drop_kept_fp32:+.2f}"
        print(
            f"{op.index:>4} {op.op:<18} {op.module or '?':<36} {op.snr_db:>8.2f} {op.cosine:>8.4f} "
            f"{op.max_abs:>9.2e} {100 * op.mac_share:>7.2f} {kept:>8}"
        )
