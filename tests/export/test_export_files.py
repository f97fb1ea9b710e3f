"""Exported files of a blitzmask-tiny checkpoint: manifest read-back, runtimes, parity, coverage, bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from blitzmask_deploy.artifacts import load_manifest, sha256_file, write_manifest
from blitzmask_deploy.errors import BadInput
from blitzmask_deploy.export.wrapper import HEADS
from blitzmask_deploy.validate.runtimes import TorchRuntime, open_runtime

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def torch_reference(tiny_checkpoint: Path) -> TorchRuntime:
    from blitzmask_deploy.checkpoint import load_checkpoint

    return TorchRuntime(load_checkpoint(tiny_checkpoint).model, 64, threads=1)


def _images(n: int = 2) -> np.ndarray:
    return np.random.default_rng(1).random((n, 64, 64, 3), dtype=np.float32)


def test_manifest_is_read_back_from_the_files(tiny_export: Path, tiny_checkpoint: Path) -> None:
    manifest = load_manifest(tiny_export)
    assert [f.name for f in manifest.files] == ["tflite-fp32", "tflite-fp16", "tflite-int8", "onnx-fp32"]
    assert manifest.variant == "blitzmask-tiny" and manifest.input_size == 64
    assert manifest.checkpoint.sha256 == sha256_file(tiny_checkpoint)
    assert manifest.architecture["params"] > 0 and manifest.architecture["gmacs"] > 0
    assert {"torch", "litert-torch", "ai-edge-quantizer", "ai-edge-litert", "onnx"} <= set(manifest.toolchain)
    for f in manifest.files:
        path = tiny_export / f.file
        assert f.sha256 == sha256_file(path) and f.bytes == path.stat().st_size
        assert [(t.name, t.shape, t.layout) for t in f.inputs] == [("images", [1, 64, 64, 3], "NHWC")]
        assert [t.name for t in f.outputs] == list(HEADS)
        assert all(t.shape[:3] == [1, 16, 16] for t in f.outputs)
        for t in (*f.inputs, *f.outputs):  # the file's own tensor names are kept where they differ
            assert (t.tensor is None) if f.format == "onnx" else (t.name in t.tensor)
        int8 = f.precision == "int8"
        for t in (*f.inputs, *f.outputs):
            assert t.dtype == ("int8" if int8 else "float32")
            assert (t.quant is not None) == int8
    fp32, fp16 = manifest.file("tflite-fp32"), manifest.file("tflite-fp16")
    assert fp16.bytes < 0.7 * fp32.bytes  # weights really are float16
    quant = manifest.file("tflite-int8").inputs[0].quant
    assert (quant.scale, quant.zero_point) == (pytest.approx(1 / 255), -128)  # uint8 pixel p is fed as p - 128


@pytest.mark.parametrize(("name", "tolerance"), [("tflite-fp32", 1e-4), ("onnx-fp32", 1e-4), ("tflite-fp16", 5e-2)])
def test_float_files_match_torch(tiny_export: Path, torch_reference: TorchRuntime, name: str, tolerance: float) -> None:
    from blitzmask_deploy.validate.parity import measure_parity

    runtime = open_runtime(tiny_export, load_manifest(tiny_export).file(name), threads=1)
    max_abs, _ = measure_parity(torch_reference, runtime, _images())
    assert set(max_abs) == set(HEADS)
    assert max(max_abs.values()) <= tolerance, max_abs


def test_int8_outputs_are_dequantized_close_to_torch(tiny_export: Path, torch_reference: TorchRuntime) -> None:
    entry = load_manifest(tiny_export).file("tflite-int8")
    runtime = open_runtime(tiny_export, entry, threads=1)
    x = _images()
    ref, out = torch_reference(x), runtime(x)
    for spec in entry.outputs:
        assert out[spec.name].dtype == np.float32
        error = np.abs(out[spec.name] - ref[spec.name])
        spread = float(ref[spec.name].max() - ref[spec.name].min())
        assert error.mean() <= max(0.05 * spread, 2 * spec.quant.scale), spec.name


def test_int8_file_loads_on_reference_kernels_too(tiny_export: Path) -> None:
    from blitzmask_deploy.export.quantize import reference_kernel_problem

    assert reference_kernel_problem(tiny_export / "model_int8.tflite") is None


def test_coverage_fp16_all_gpu_and_int8_all_integer(tiny_export: Path) -> None:
    from blitzmask_deploy.export.coverage import coverage_report

    report = {f.name: f for f in coverage_report(tiny_export)}
    assert set(report) == {"tflite-fp32", "tflite-fp16", "tflite-int8"}
    assert report["tflite-fp16"].gpu_compatible_pct == 100.0
    assert report["tflite-int8"].float_ops == 0
    assert report["tflite-fp32"].float_ops == len(report["tflite-fp32"].ops)
    assert any(op.op == "DEQUANTIZE" for op in report["tflite-fp16"].ops)
    convs = [op for op in report["tflite-int8"].ops if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert convs and all(op.module and op.module != "(root)" for op in convs)


def test_tampered_file_is_rejected_by_sha256(tiny_export: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny_export, tmp_path / "export")
    with open(copy / "model_int8.tflite", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BadInput, match="sha256"):
        open_runtime(copy, load_manifest(copy).file("tflite-int8"))


def test_truncated_file_with_matching_manifest_is_bad_input(tiny_export: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny_export, tmp_path / "export")
    manifest = load_manifest(copy)
    for name in ("model_fp32.tflite", "model.onnx"):
        data = (copy / name).read_bytes()
        (copy / name).write_bytes(data[: len(data) // 3])
    for f in manifest.files:
        f.sha256, f.bytes = sha256_file(copy / f.file), (copy / f.file).stat().st_size
    write_manifest(manifest, copy)
    for name in ("tflite-fp32", "onnx-fp32"):
        with pytest.raises(BadInput, match="not a readable"):
            open_runtime(copy, manifest.file(name))


def test_validate_export_passes_and_writes_json(tiny_export: Path, synth_dataset: Path) -> None:
    from blitzmask_deploy.validate.export_dir import run_validate_export

    result = run_validate_export(tiny_export, synth_dataset, max_images=3, threads=1, progress=False)
    saved = json.loads((tiny_export / "validation.json").read_text())
    assert saved == json.loads(json.dumps(result.to_json()))
    assert saved["variant"] == "blitzmask-tiny" and saved["reference"]["name"] == "checkpoint"
    rows = {row["name"]: row for row in saved["variants"]}
    assert set(rows) == {"tflite-fp32", "tflite-fp16", "tflite-int8", "onnx-fp32"}
    for row in rows.values():
        assert row["mask_ap_drop"] == pytest.approx(saved["reference"]["mask_ap"] - row["mask_ap"])
        assert row["latency_ms_p50"] > 0 and set(row["parity"]) == set(HEADS)
    assert max(rows["tflite-fp32"]["parity"].values()) <= 1e-4
    assert rows["tflite-int8"]["budget"]["parity_max_abs"] is None  # numerics.yaml sets no int8 parity budget
    assert result.passed and saved["passed"]
    assert "PASSED" in result.to_table()


def test_validate_export_fails_rows_over_budget(tiny_export: Path, synth_dataset: Path, monkeypatch) -> None:
    import blitzmask_deploy.config as config
    from blitzmask_deploy.validate.export_dir import run_validate_export

    strict = config.NumericsCard(
        ap_drop_max={"fp32": 0.0, "fp16": 0.0, "int8": 0.0, "onnx": 0.0},
        parity_max_abs={"fp32": 0.0, "fp16": 0.0, "onnx": 1.0},
    )
    monkeypatch.setattr(config, "load_numerics", lambda variant: strict)
    result = run_validate_export(tiny_export, synth_dataset, max_images=1, threads=1, progress=False)
    rows = {f.file.name: f for f in result.files}
    assert not result.passed
    assert not rows["tflite-fp16"].passed and "parity" in rows["tflite-fp16"].failures[0]
    assert rows["onnx-fp32"].passed
    assert "FAIL" in result.to_table()


def test_validate_export_rejects_changed_or_foreign_checkpoint(
    tiny_export: Path, tiny_checkpoint: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    from blitzmask_deploy.validate.export_dir import run_validate_export

    copy = shutil.copytree(tiny_export, tmp_path / "export")
    manifest = load_manifest(copy)
    manifest.checkpoint.sha256 = "f" * 64
    write_manifest(manifest, copy)
    with pytest.raises(BadInput, match="sha256 differs"):
        run_validate_export(copy, synth_dataset, max_images=1, progress=False)
    manifest.checkpoint.sha256 = sha256_file(tiny_checkpoint)
    manifest.variant = "blitzmask-b0"
    write_manifest(manifest, copy)
    with pytest.raises(BadInput, match="checkpoint is blitzmask-tiny, the export is blitzmask-b0"):
        run_validate_export(copy, synth_dataset, max_images=1, progress=False)
