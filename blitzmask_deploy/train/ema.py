"""Exponential moving average of model weights (the weights used for eval and export)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """EMA of a model's parameters and buffers; the decay ramps up as (1 + n) / (10 + n) towards `decay`."""

    def __init__(self, model: nn.Module, decay: float = 0.9998) -> None:
        self.module = copy.deepcopy(model).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend `model`'s current weights into the average."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = model.state_dict()
        averaged, latest = [], []
        for name, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                averaged.append(value)
                latest.append(current[name].detach())
            else:
                value.copy_(current[name])
        torch._foreach_lerp_(averaged, latest, 1 - d)  # d·avg + (1-d)·new, one fused pass
