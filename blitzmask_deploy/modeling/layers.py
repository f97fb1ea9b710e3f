"""Building blocks that use only mobile-friendly ops: conv → BN → ReLU/ReLU6, depthwise conv, add."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never dropping more than 10 % (EfficientNet's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class InputNorm(nn.Module):
    """(x - mean) / std on [0, 1] RGB input, as a fixed per-channel 1×1 depthwise conv (exports as one op)."""

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__()
        scale = torch.tensor([1.0 / s for s in std])
        self.register_buffer("weight", scale.view(3, 1, 1, 1))
        self.register_buffer("bias", -torch.tensor(mean) * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, groups=3)


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) → BatchNorm2d → optional activation; the order keeps BN foldable into the conv."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: type[nn.Module] | None = nn.ReLU,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


class DepthwiseSeparable(nn.Sequential):
    """3×3 depthwise conv → BN → act, then 1×1 pointwise conv → BN → act."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__(
            ConvBNAct(in_ch, in_ch, kernel, groups=in_ch, act=act),
            ConvBNAct(in_ch, out_ch, 1, act=act),
        )


class MBConv(nn.Module):
    """EfficientNet-Lite inverted residual: expand 1×1 → depthwise k×k → project 1×1, no squeeze-excite, ReLU6."""

    def __init__(self, in_ch: int, out_ch: int, *, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(in_ch, mid, 1, act=nn.ReLU6))
        layers.append(ConvBNAct(mid, mid, kernel, stride, groups=mid, act=nn.ReLU6))
        layers.append(ConvBNAct(mid, out_ch, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.residual else out
