"""`--calib-headroom`: every int8 activation range is widened by the factor (the input and the weights are not),
the manifest records it, the AP-budget search tries each headroom in full int8 before it moves any op, and bad
factors exit 2 with one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blitzmask_deploy.core.artifacts import load_manifest
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def _scales(path: Path) -> dict[str, np.ndarray]:
    """Quantisation scales of every quantised tensor of the .tflite file `path`, by name."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(path)).get_tensor_details()
    return {
        d["name"]: d["quantization_parameters"]["scales"]
        for d in details
        if len(d["quantization_parameters"]["scales"])
    }


def _io_names(path: Path) -> tuple[list[str], list[str]]:
    """Tensor names of the inputs and the outputs of the .tflite file `path`."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    return [d["name"] for d in it.get_input_details()], [d["name"] for d in it.get_output_details()]


def test_headroom_widens_activation_ranges_only(
    tiny_checkpoint: Path, tiny_export: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    from blitzmask_deploy.export.pipeline import export_checkpoint

    out = tmp_path / "wide"
    export_checkpoint(
        tiny_checkpoint, out, formats=["int8"], calib=synth_dataset, calib_images=8, calib_headroom=1.5, progress=False
    )
    wide, default = load_manifest(out).file("tflite-int8"), load_manifest(tiny_export).file("tflite-int8")
    assert wide.activation_headroom == 1.5 and default.activation_headroom == 1.0
    ours, theirs = _scales(out / wide.file), _scales(tiny_export / default.file)
    assert ours.keys() == theirs.keys()
    ratios = {name: float(np.max(ours[name] / theirs[name])) for name in ours}
    inputs, outputs = _io_names(out / wide.file)
    assert all(ratios[name] == pytest.approx(1.0) for name in inputs)  # the input keeps its contract range
    widened = [name for name, ratio in ratios.items() if ratio == pytest.approx(1.5, rel=1e-4)]
    kept = [name for name, ratio in ratios.items() if ratio == pytest.approx(1.0, rel=1e-4)]
    assert len(widened) + len(kept) == len(ratios)  # each tensor either widened exactly or untouched
    fixed = [name for name in outputs if "heatmap" in name]  # a sigmoid's: int8 range [0, 1) by definition
    assert len(fixed) == 1 and set(outputs) - set(fixed) <= set(widened) and fixed[0] in kept
    assert len(kept) > len(inputs)  # weights keep their scales


def test_budget_search_tries_headrooms_before_moving_ops(
    tiny_export: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    from blitzmask_deploy.export.calibration import calibration_images
    from blitzmask_deploy.export.mixed_precision import quantize_on_budget
    from blitzmask_deploy.export.quantize import quantize_int8

    fp32 = tiny_export / "model_fp32.tflite"
    images = calibration_images(synth_dataset, 64, 4, progress=False)
    plain = _scales(quantize_int8(fp32, images, tmp_path / "plain.tflite"))
    output = next(name for name in _io_names(tmp_path / "plain.tflite")[1] if "coefficients" in name)

    def drop(path: Path) -> float:
        """A model that holds the budget only once its activation ranges are at least 1.5× the calibrated ones."""
        widened = float(np.max(_scales(path)[output] / plain[output]))
        seen.append(round(widened, 3))
        return 0.0005 if widened >= 1.5 - 1e-4 else 0.01

    seen: list[float] = []
    result = quantize_on_budget(fp32, images, tmp_path / "int8.tflite", budget=0.001, ap_drop=drop)
    assert (result.headroom, result.overrides, result.ap_drop) == (1.5, {}, 0.0005)
    assert seen == [1.0, 1.25, 1.5]
    seen.clear()
    given = quantize_on_budget(fp32, images, tmp_path / "int8.tflite", budget=0.01, ap_drop=drop, headroom=1.25)
    assert (given.headroom, given.overrides, seen) == (1.25, {}, [1.25])  # a given headroom is the only one tried


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--calib-headroom", "0.5"], "from 1 to 16"),
        (["--calib-headroom", "nan"], "from 1 to 16"),
        (["--calib-headroom", "inf"], "from 1 to 16"),
        (["--calib-headroom", "17"], "from 1 to 16"),
        (["--calib-headroom", "1.5", "--formats", "fp32"], "add int8"),
    ],
)
def test_bad_headroom_exits_2_with_one_line(
    tiny_checkpoint: Path, synth_dataset: Path, tmp_path: Path, extra: list, message: str
) -> None:
    done = run_cli("export", tiny_checkpoint, "--out", tmp_path / "x", "--calib", synth_dataset, *extra)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr
    assert not (tmp_path / "x").exists()
