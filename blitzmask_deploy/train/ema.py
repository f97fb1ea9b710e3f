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
        self._model: nn.Module | None = None
        self._pairs: tuple[list, list, list] = ([], [], [])

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend `model`'s current weights into the average."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        averaged, latest, counters = self._tensors(model)
        torch._foreach_lerp_(averaged, latest, 1 - d)  # d·avg + (1-d)·new, one fused pass
        for mine, theirs in counters:
            mine.copy_(theirs)

    def _tensors(self, model: nn.Module) -> tuple[list, list, list]:
        """(EMA floats, model floats, integer (EMA, model) pairs) matched by name, once per model: two state_dict()
        walks per step cost more than the blend. Loading a state dict copies into these same tensors; moving the
        model to another device or dtype after the first update is not supported."""
        if self._model is not model:
            current = model.state_dict()
            floats, ints = [], []
            for name, value in self.module.state_dict().items():
                (floats if value.dtype.is_floating_point else ints).append((value, current[name].detach()))
            self._pairs = ([a for a, _ in floats], [b for _, b in floats], ints)
            self._model = model
        return self._pairs
