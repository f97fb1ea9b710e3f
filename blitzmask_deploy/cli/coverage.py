"""`blitzmask coverage EXPORT_DIR`: GPU-delegate and integer coverage of every .tflite op, mapped to modules."""

from __future__ import annotations

from pathlib import Path

import typer

from blitzmask_deploy.cli.common import emit_json, existing_path

INT16_MEANS = "int16 activations (a16w8): runs on QNN HTP and LiteRT CPU, not on int8-only DSPs/NPUs"
FLOAT_MEANS = "float op in an int8 file: DSP/NPU delegates hand it back to the CPU"


def register(app: typer.Typer) -> None:
    """Add `coverage` to `app`."""
    app.command("coverage")(coverage_cmd)


def coverage_cmd(
    export_dir: Path = typer.Argument(..., help="Export directory with manifest.json."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with every op of every file."),
) -> None:
    """Per .tflite file: share of ops the GPU delegate takes, float ops left in int8 files, offending ops."""
    existing_path(export_dir, "export directory")
    from blitzmask_deploy.export.coverage import coverage_report

    report = coverage_report(export_dir)
    if as_json:
        emit_json({"files": [f.to_json() for f in report]})
        return
    for f in report:
        int8 = f.name.endswith("int8")
        gpu = f"GPU {f.gpu_compatible_pct:6.2f} %"
        int16 = f"  int16 ops {f.int16_ops}" if f.int16_ops else ""
        print(f"{f.name:<12} {f.file:<18} {len(f.ops):>4} ops  {gpu}  float ops {f.float_ops}{int16}")
        for op in f.ops:
            problems = [f"GPU: {op.gpu_reason}"] if not op.gpu_compatible else []
            problems += [FLOAT_MEANS] if int8 and not op.integer else []
            problems += [INT16_MEANS] if int8 and op.int16 else []
            if problems:
                print(f"    Op#{op.index:<4} {op.op:<22} {op.module or '?':<40} {'; '.join(problems)}")
