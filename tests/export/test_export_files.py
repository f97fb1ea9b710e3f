"""Exported files of a blitzmask-tiny checkpoint: manifest read-back, runtimes, parity, coverage, bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from blitzmask_deploy.core.artifacts import load_manifest, sha256_file, write_manifest
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.export.wrapper import HEADS
from blitzmask_deploy.inference.runtimes import TorchRuntime, open_runtime

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def torch_reference(tiny_checkpoint: Path) -> TorchRuntime:
    from blitzmask_deploy.core.checkpoints import read_checkpoint
    from blitzmask_deploy.modeling.registry import model_from_checkpoint

    return TorchRuntime(model_from_checkpoint(read_checkpoint(tiny_checkpoint)), 64, threads=1)


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
