"""The export-only module: NHWC image in, one NHWC tensor per head out, named after the heads.

Phones feed NHWC buffers and read NHWC outputs; the model itself is NCHW. Keeping the transposes here (not in
`modeling/`) lets every exporter (LiteRT, ONNX) see the same graph with the same I/O names.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

HEADS = ("heatmap", "coefficients", "spanning_set", "box")
INPUT_NAME = "images"


class ExportWrapper(nn.Module):
    """Wrap a BlitzMask-like model: forward(images (N,S,S,3) float in [0,1]) -> {head: (N,h,w,C)}."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model(images.permute(0, 3, 1, 2))
        return {head: out[head].permute(0, 2, 3, 1) for head in HEADS if head in out}


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` with every Conv2d → BatchNorm2d pair inside an nn.Sequential folded into the
    conv (the BN becomes Identity). The converters fold BN too; doing it first makes the traced graph ~1/3 smaller
    and the conversion faster. Outputs differ from the original by float rounding only."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    for seq in fused.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                seq[i] = fuse_conv_bn_eval(conv, bn)
                seq[i + 1] = nn.Identity()
    return fused


def head_names(model: nn.Module, input_size: int) -> list[str]:
    """The heads `model` returns, in export order (runs one small forward pass)."""
    with torch.inference_mode():
        out = model.eval()(torch.zeros(1, 3, input_size, input_size))
    unknown = sorted(set(out) - set(HEADS))
    if unknown:
        raise ValueError(f"model returns unknown heads {unknown}")
    return [h for h in HEADS if h in out]


def sample_input(input_size: int, *, seed: int = 0) -> torch.Tensor:
    """A deterministic (1,S,S,3) float32 image batch in [0,1] used for tracing."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, input_size, input_size, 3, generator=gen)
