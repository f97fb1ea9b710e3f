"""Prediction heads: a stack of depthwise-separable convs and a 1×1 output conv (with bias)."""

from __future__ import annotations

import math

import torch
from torch import nn

from blitzmask_deploy.modeling.layers import DepthwiseSeparable

HEATMAP_PRIOR = 0.1  # initial sigmoid output of the heatmap head (bias = logit(0.1) ≈ -2.19, CenterNet)


class Head(nn.Module):
    """`convs` dw-separable convs (in → hidden → … → hidden), then a 1×1 conv to `out_ch` and an optional act."""

    def __init__(
        self,
        in_ch: int,
        hidden: int,
        out_ch: int,
        *,
        convs: int = 2,
        final_act: nn.Module | None = None,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = in_ch
        for _ in range(convs):
            layers.append(DepthwiseSeparable(ch, hidden))
            ch = hidden
        self.tower = nn.Sequential(*layers)
        self.out = nn.Conv2d(ch, out_ch, 1)
        nn.init.normal_(self.out.weight, std=0.01)
        nn.init.constant_(self.out.bias, bias_init)
        self.act = final_act if final_act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.out(self.tower(x)))


def build_heads(in_ch: int, hidden: int, convs: int, num_classes: int, k: int, use_box: bool) -> nn.ModuleDict:
    """The heads in output order: heatmap (sigmoid), coefficients, spanning_set, box (ReLU, optional)."""
    heads = {
        "heatmap": Head(
            in_ch,
            hidden,
            num_classes,
            convs=convs,
            final_act=nn.Sigmoid(),
            bias_init=-math.log((1 - HEATMAP_PRIOR) / HEATMAP_PRIOR),
        ),
        "coefficients": Head(in_ch, hidden, k, convs=convs),
        "spanning_set": Head(in_ch, hidden, k, convs=convs),
    }
    if use_box:
        heads["box"] = Head(in_ch, hidden, 4, convs=convs, final_act=nn.ReLU(), bias_init=1.0)
    return nn.ModuleDict(heads)
