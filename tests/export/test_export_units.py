"""Fast pieces of export and export validation: no conversion involved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from blitzmask_deploy.core.artifacts import TensorSpec
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.export.calibration import calibration_files, calibration_images
from blitzmask_deploy.export.coverage import analyze_tflite, module_path
from blitzmask_deploy.export.pipeline import export_model
from blitzmask_deploy.export.wrapper import HEADS, ExportWrapper, fuse_conv_bn, head_names
from blitzmask_deploy.inference.runtimes import LiteRTRuntime, OnnxRuntime


class _Heads(nn.Module):
    """A stand-in with the BlitzMask forward contract (no box head)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5 + 4 + 4, 3, stride=4, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        heat, coef, basis = self.conv(x).split([5, 4, 4], dim=1)
        return {"spanning_set": basis, "heatmap": heat.sigmoid(), "coefficients": coef}


def test_wrapper_is_nhwc_and_orders_heads() -> None:
    torch.manual_seed(0)
    model = _Heads()
    x = torch.rand(2, 32, 32, 3)
    out = ExportWrapper(model)(x)
    ref = model(x.permute(0, 3, 1, 2))
    assert list(out) == ["heatmap", "coefficients", "spanning_set"]
    for head, value in out.items():
        torch.testing.assert_close(value, ref[head].permute(0, 2, 3, 1))
    assert head_names(model, 32) == [h for h in HEADS if h != "box"]


def test_fuse_conv_bn_keeps_outputs_and_leaves_the_original_alone() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6()),
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
        nn.BatchNorm2d(8),
    )
    for bn in (model[0][1], model[2]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
    model.eval()
    fused = fuse_conv_bn(model)
    x = torch.rand(2, 3, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 2


def test_module_path_from_converter_tensor_names() -> None:
    root = "blitzmask_deploy.export.wrapper.ExportWrapper/blitzmask_deploy.modeling.blitzmask.BlitzMask_model"
    fused = (
        f"{root}/torch.nn.modules.container.Sequential_stem/torch.nn.modules.activation.ReLU6_2;;"
        f"{root}/torch.nn.modules.container.Sequential_stem/torch.nn.modules.conv.Conv2d_0;1"
    )
    assert module_path(fused) == "stem.2"  # the module whose output a fused op produces
    assert module_path(f"{root}/blitzmask_deploy.modeling.heads.Head_spanning_set;") == "spanning_set"
    assert module_path(f"{root};") == "(root)"
    assert module_path("serving_default_images") is None
    assert module_path("arith.constant") is None


def test_calibration_picks_spread_images(synth_dataset: Path) -> None:
    files = calibration_files(synth_dataset, 5)
    everything = calibration_files(synth_dataset, 1000)
    assert len(files) == 5 and len(everything) == 24  # the train split only
    assert files[0] == everything[0] and files[-1] == everything[-1]
    images = calibration_images(synth_dataset, 48, 3, progress=False)
    assert len(images) == 3
    assert images[0].shape == (1, 48, 48, 3) and images[0].dtype == np.float32
    assert images[0].min() >= 0.0 and images[0].max() <= 1.0


def test_calibration_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not found"):
        calibration_files(tmp_path / "missing", 4)
    with pytest.raises(BadInput, match="no calibration images"):
        calibration_files(tmp_path, 4)
    (tmp_path / "a.png").write_bytes(b"not a png")
    with pytest.raises(BadInput, match="must be positive"):
        calibration_files(tmp_path, 0)
    with pytest.raises(BadInput, match=r"a\.png"):
        calibration_images(tmp_path, 32, 1, progress=False)


@pytest.mark.parametrize(
    ("formats", "calib", "message"),
    [(["fp64"], None, "unknown export format"), ([], None, "unknown export format"), (["int8"], None, "--calib")],
)
def test_export_rejects_bad_formats(tmp_path: Path, formats: list[str], calib: Path | None, message: str) -> None:
    from blitzmask_deploy.core.artifacts import CheckpointRef

    ref = CheckpointRef(path="x.pt", sha256="0" * 64)
    with pytest.raises(BadInput, match=message):
        export_model(_Heads(), tmp_path, variant="v", input_size=32, categories=[], checkpoint=ref, formats=formats)
    assert not (tmp_path / "manifest.json").exists()


def _spec(fmt: str) -> object:
    from blitzmask_deploy.core.artifacts import ExportedFile

    image = TensorSpec(name="images", shape=[1, 32, 32, 3], dtype="float32")
    heatmap = TensorSpec(name="heatmap", shape=[1, 8, 8, 6], dtype="float32")
    return ExportedFile(
        file=f"m.{fmt}", format=fmt, precision="fp32", sha256="0" * 64, bytes=1, inputs=[image], outputs=[heatmap]
    )


@pytest.mark.parametrize("content", [b"", b"TFL3" + bytes(64), b"\x00garbage" * 100])
def test_corrupt_tflite_is_bad_input(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(content)
    with pytest.raises(BadInput, match=r"not a readable \.tflite"):
        LiteRTRuntime(path, _spec("tflite"))
    with pytest.raises(BadInput, match=r"not a readable \.tflite"):
        analyze_tflite(path)


@pytest.mark.parametrize("content", [b"", b"\x08\x07\x12\x04junk", b"\xff" * 200])
def test_corrupt_onnx_is_bad_input(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(content)
    with pytest.raises(BadInput, match=r"not a readable \.onnx"):
        OnnxRuntime(path, _spec("onnx"))
