"""EfficientNet-Lite B0–B4 (and a tiny variant) as a feature extractor: strides 4, 8, 16, 32, no classifier.

Lite rules (Google's EfficientNet-Lite): no squeeze-excite, ReLU6 everywhere, the stem is not width-scaled and
the first and last stages are not depth-scaled. The 1280-channel head conv and the classifier are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from blitzmask_deploy.modeling.layers import ConvBNAct, MBConv, make_divisible


@dataclass(frozen=True)
class Stage:
    """One row of the EfficientNet-B0 table."""

    expand: int
    kernel: int
    stride: int
    out_ch: int
    repeats: int


# EfficientNet-B0 MBConv table (Tan & Le 2019, table 1): expand, kernel, stride, channels, repeats.
B0_STAGES = (
    Stage(1, 3, 1, 16, 1),
    Stage(6, 3, 2, 24, 2),
    Stage(6, 5, 2, 40, 2),
    Stage(6, 3, 2, 80, 3),
    Stage(6, 5, 1, 112, 3),
    Stage(6, 5, 2, 192, 4),
    Stage(6, 3, 1, 320, 1),
)

# Tiny: the same table without the last (320-channel) stage, a narrower stem and smaller expansion.
TINY_STAGES = (
    Stage(1, 3, 1, 16, 1),
    Stage(4, 3, 2, 24, 2),
    Stage(4, 3, 2, 40, 2),
    Stage(4, 3, 2, 80, 3),
    Stage(4, 3, 1, 112, 3),
    Stage(4, 5, 2, 192, 4),
)


@dataclass(frozen=True)
class BackboneSpec:
    """Stage table and stem of one backbone family."""

    stages: tuple[Stage, ...]
    stem_channels: int
    fix_first_last: bool


SPECS = {
    "efficientnet-lite": BackboneSpec(B0_STAGES, stem_channels=32, fix_first_last=True),
    "efficientnet-lite-tiny": BackboneSpec(TINY_STAGES, stem_channels=16, fix_first_last=False),
}


def round_repeats(repeats: int, depth_mult: float) -> int:
    """Depth scaling: ceil(repeats × depth_mult)."""
    return math.ceil(repeats * depth_mult)


class EfficientNetLite(nn.Module):
    """Feature extractor; `forward` returns the features at strides 4, 8, 16, 32 (`out_channels` lists widths)."""

    def __init__(self, spec: BackboneSpec, width_mult: float = 1.0, depth_mult: float = 1.0) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, spec.stem_channels, 3, stride=2, act=nn.ReLU6)
        stages: list[nn.Module] = []
        in_ch = spec.stem_channels
        last = len(spec.stages) - 1
        stride = 2
        self.return_stages: list[int] = []
        self.out_channels: list[int] = []
        for i, st in enumerate(spec.stages):
            out_ch = make_divisible(st.out_ch * width_mult)
            fixed = spec.fix_first_last and i in (0, last)
            repeats = st.repeats if fixed else round_repeats(st.repeats, depth_mult)
            blocks = []
            for j in range(repeats):
                blocks.append(
                    MBConv(in_ch, out_ch, kernel=st.kernel, stride=st.stride if j == 0 else 1, expand=st.expand)
                )
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
            stride *= st.stride
            next_stride = stride * spec.stages[i + 1].stride if i < last else None
            if stride >= 4 and next_stride != stride:
                self.return_stages.append(i)
                self.out_channels.append(out_ch)
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.return_stages:
                feats.append(x)
        return feats


def build_backbone(name: str, width_mult: float, depth_mult: float) -> EfficientNetLite:
    """`efficientnet-lite0..4` (the width/depth come from the config) or `efficientnet-lite-tiny`."""
    family = "efficientnet-lite-tiny" if name == "efficientnet-lite-tiny" else "efficientnet-lite"
    return EfficientNetLite(SPECS[family], width_mult, depth_mult)
