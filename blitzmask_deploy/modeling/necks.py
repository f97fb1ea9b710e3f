"""Light FPN: 1×1 laterals, top-down nearest ×2 upsampling + add, a depthwise-separable conv per level."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from blitzmask_deploy.modeling.layers import ConvBNAct, DepthwiseSeparable


class LiteFPN(nn.Module):
    """Fuses backbone features (strides 4, 8, 16, 32) top-down into one map at `output_stride` (4 or 8)."""

    def __init__(self, in_channels: list[int], channels: int, output_stride: int = 4) -> None:
        super().__init__()
        strides = [4 * 2**i for i in range(len(in_channels))]
        self.first = strides.index(output_stride)
        used = in_channels[self.first :]
        self.laterals = nn.ModuleList(ConvBNAct(c, channels, 1, act=None) for c in used)
        self.smooth = nn.ModuleList(DepthwiseSeparable(channels, channels) for _ in used[:-1])
        self.out_channels = channels

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        feats = feats[self.first :]
        x = self.laterals[-1](feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            up = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = self.smooth[i](self.laterals[i](feats[i]) + up)
        return x
