"""BlitzMask: EfficientNet-Lite backbone → light FPN → heatmap / coefficients / spanning_set / box heads."""

from __future__ import annotations

import torch
from torch import nn

from blitzmask_deploy.modeling.backbones.efficientnet_lite import build_backbone
from blitzmask_deploy.modeling.config import ModelConfig
from blitzmask_deploy.modeling.heads import Head, build_heads
from blitzmask_deploy.modeling.layers import InputNorm
from blitzmask_deploy.modeling.necks import LiteFPN


class BlitzMask(nn.Module):
    """Input (N, 3, S, S) RGB in [0, 1]; output dict of raw head tensors at stride `config.output_stride`.

    - `heatmap` (N, C, S/4, S/4): class centre heatmaps after sigmoid.
    - `coefficients` (N, K, S/4, S/4), `spanning_set` (N, K, S/4, S/4): raw; an instance's mask is
      sigmoid(Σ_k coefficients[k] at its centre × spanning_set[k]).
    - `box` (N, 4, S/4, S/4) when `use_box`: non-negative left, top, right, bottom distances from the cell
      centre in units of 16 input pixels.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.norm = InputNorm()
        self.backbone = build_backbone(config.backbone, config.width_mult, config.depth_mult)
        self.neck = LiteFPN(self.backbone.out_channels, config.neck_channels, config.output_stride)
        self.heads = build_heads(
            config.neck_channels,
            config.head_channels,
            config.head_convs,
            config.num_classes,
            config.num_coefficients,
            config.use_box,
        )
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.neck(self.backbone(self.norm(x)))
        return {name: head(feats) for name, head in self.heads.items()}


def _init_weights(model: nn.Module) -> None:
    """Kaiming for convs (except head output convs, set by the heads), BN to identity."""
    out_convs = {id(m.out) for m in model.modules() if isinstance(m, Head)}
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and id(m) not in out_convs:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
