"""Mixed precision on an AP budget: ops move to a16w8, then float, until the budget holds; without a budget the
int8 file is byte for byte what full int8 quantisation gives; bad options exit 2 with one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blitzmask_deploy.core.artifacts import load_manifest
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

_RESCALE = ("QUANTIZE", "DEQUANTIZE")


def _fake_drop(path: Path) -> float:
    """A deliberately hurt model: 0.2 AP points per op left in int8, 0.1 per op at a16w8, none in float."""
    from ai_edge_litert.interpreter import Interpreter

    from blitzmask_deploy.export.quant_debug import graph_ops

    types, outputs, _ = graph_ops(path)
    dtypes = {d["name"]: d["dtype"] for d in Interpreter(model_path=str(path)).get_tensor_details()}
    kept = [dtypes[name] for kind, name in zip(types, outputs, strict=True) if kind not in _RESCALE]
    return 0.002 * sum(t == np.int8 for t in kept) + 0.001 * sum(t == np.int16 for t in kept)


@pytest.fixture
def hurt(monkeypatch: pytest.MonkeyPatch) -> None:
    from blitzmask_deploy.export import pipeline

    monkeypatch.setattr(pipeline, "_ap_drop_on", lambda *args: _fake_drop)


@pytest.mark.parametrize(("budget", "precisions"), [(8.0, {"a16w8"}), (3.0, {"a16w8", "fp32"})])
def test_budget_moves_the_worst_ops_and_stops_when_it_holds(
    hurt: None, tiny_checkpoint: Path, synth_dataset: Path, tmp_path: Path, budget: float, precisions: set
) -> None:
    from blitzmask_deploy.export.pipeline import export_checkpoint

    out = tmp_path / "export"
    export_checkpoint(
        tiny_checkpoint, out, formats=["int8"], calib=synth_dataset, calib_images=4, int8_budget=budget, progress=False
    )
    manifest = load_manifest(out)
    entry = manifest.file("tflite-int8")
    assert {o.precision for o in entry.op_precisions} == precisions
    assert all(o.module for o in entry.op_precisions)
    assert entry.host_ap_drop == pytest.approx(_fake_drop(out / entry.file))
    assert entry.host_ap_drop <= budget / 100 < entry.host_ap_drop + 0.002  # one op fewer would not hold
    assert 0 <= entry.int8_mac_share < 1
    assert manifest.calibration.int8_budget == budget and manifest.calibration.images == 4


def test_without_budget_the_bytes_are_those_of_full_int8(
    tiny_export: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    from blitzmask_deploy.export.calibration import calibration_images
    from blitzmask_deploy.export.quantize import quantize_int8

    manifest = load_manifest(tiny_export)
    entry = manifest.file("tflite-int8")
    assert entry.op_precisions == [] and entry.int8_mac_share == 1.0 and entry.host_ap_drop is None
    images = calibration_images(synth_dataset, 64, 8, progress=False)
    ours = quantize_int8(tiny_export / "model_fp32.tflite", images, tmp_path / "ours.tflite")
    reference = _full_int8_as_before(tiny_export / "model_fp32.tflite", images, tmp_path / "before.tflite")
    assert ours.read_bytes() == reference.read_bytes() == (tiny_export / entry.file).read_bytes()


def _full_int8_as_before(fp32: Path, images: list, out: Path) -> Path:
    """The quantisation of the int8 export before mixed precision existed (kept here as the reference)."""
    from ai_edge_quantizer import calibrator, quantizer, recipe

    from blitzmask_deploy.export.quantize import _widen_degenerate_ranges

    q = quantizer.Quantizer(str(fp32), recipe.static_wi8_ai8())
    mode = calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED
    qsvs = q.calibrate({"serving_default": [{"images": x} for x in images]}, num_threads=2, mode=mode)
    _widen_degenerate_ranges(qsvs)
    name = next(n for n in qsvs if n.startswith("serving_default_images"))
    qsvs[name] = {"min": np.zeros_like(qsvs[name]["min"]), "max": np.ones_like(qsvs[name]["max"])}
    out.write_bytes(bytes(q.quantize(qsvs, enable_progress_report=False).quantized_model))
    return out


def test_fewest_is_the_smallest_count_that_holds() -> None:
    from blitzmask_deploy.export.mixed_precision import _fewest

    for need in range(1, 20):
        calls = []
        assert _fewest(19, lambda k, need=need, calls=calls: calls.append(k) or k >= need) == need
        assert len(calls) <= 10
    assert _fewest(5, lambda k: False) is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--int8-budget", "-1"], "non-negative"),
        (["--int8-budget", "0.5", "--formats", "fp32"], "add int8"),
        (["--int8-budget", "0.5", "--calib", "IMAGES"], "val split"),
    ],
)
def test_bad_budget_options_exit_2_with_one_line(
    tiny_checkpoint: Path, synth_dataset: Path, tmp_path: Path, extra: list, message: str
) -> None:
    calib = ["--calib", synth_dataset] if "--calib" not in extra else []
    args = [str(synth_dataset / "images" / "train") if a == "IMAGES" else a for a in extra]
    done = run_cli("export", tiny_checkpoint, "--out", tmp_path / "x", *calib, *args)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr
    assert not (tmp_path / "x").exists()


def test_coverage_shows_ops_off_the_int8_path(tiny_export: Path, synth_dataset: Path, tmp_path: Path) -> None:
    from blitzmask_deploy.export.calibration import calibration_images
    from blitzmask_deploy.export.coverage import analyze_tflite
    from blitzmask_deploy.export.quantize import calibrate, op_scopes, quantize_calibrated

    fp32 = tiny_export / "model_fp32.tflite"
    scopes = op_scopes(fp32)
    qsvs = calibrate(fp32, calibration_images(synth_dataset, 64, 2, progress=False))
    mixed = quantize_calibrated(
        fp32, qsvs, tmp_path / "mixed.tflite", overrides={scopes[2]: "a16w8", scopes[5]: "fp32"}
    )
    report = analyze_tflite(mixed)
    assert report.int16_ops >= 1 and report.float_ops >= 1
    assert analyze_tflite(tiny_export / "model_int8.tflite").int16_ops == 0
