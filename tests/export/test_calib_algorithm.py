"""`--calib-algorithm`: mse changes the int8 file's weight scales (not its activation ranges) and the manifest
records it; min_max stays the default; an unknown algorithm exits 2 with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from blitzmask_deploy.core.artifacts import load_manifest
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def test_mse_changes_the_int8_file_and_the_manifest_records_it(
    tiny_checkpoint: Path, tiny_export: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    from blitzmask_deploy.export.coverage import analyze_tflite
    from blitzmask_deploy.export.pipeline import export_checkpoint

    out = tmp_path / "mse"
    options = {"calib": synth_dataset, "calib_images": 8, "calib_algorithm": "mse", "progress": False}
    export_checkpoint(tiny_checkpoint, out, formats=["int8"], **options)
    mse, default = load_manifest(out), load_manifest(tiny_export)
    assert mse.calibration.algorithm == "mse" and mse.calibration.images == 8
    assert default.calibration.algorithm == "min_max" and default.calibration.images == 8
    ours, theirs = mse.file("tflite-int8"), default.file("tflite-int8")
    assert ours.sha256 != theirs.sha256
    assert ours.outputs == theirs.outputs  # the same calibrated activation ranges: only weight scales differ
    report = analyze_tflite(out / ours.file)
    assert report.int16_ops == 0 and report.float_ops == 0


def test_mse_with_per_op_overrides(tiny_export: Path, synth_dataset: Path, tmp_path: Path) -> None:
    from blitzmask_deploy.export.calibration import calibration_images
    from blitzmask_deploy.export.coverage import analyze_tflite
    from blitzmask_deploy.export.quantize import calibrate, op_scopes, quantize_calibrated

    fp32 = tiny_export / "model_fp32.tflite"
    scopes = op_scopes(fp32)
    qsvs = calibrate(fp32, calibration_images(synth_dataset, 64, 2, progress=False))
    overrides = {scopes[2]: "a16w8", scopes[5]: "fp32"}
    files = [
        quantize_calibrated(fp32, qsvs, tmp_path / f"{name}.tflite", overrides=overrides, algorithm=name)
        for name in ("min_max", "mse")
    ]
    assert files[0].read_bytes() != files[1].read_bytes()
    report = analyze_tflite(files[1])
    assert report.int16_ops >= 1 and report.float_ops >= 1


def test_unknown_calib_algorithm_exits_2_with_one_line(
    tiny_checkpoint: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    done = run_cli(
        "export", tiny_checkpoint, "--out", tmp_path / "x", "--calib", synth_dataset, "--calib-algorithm", "octav"
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "min_max, mse" in done.stderr
    assert not (tmp_path / "x").exists()
