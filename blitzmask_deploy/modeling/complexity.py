"""Model size and compute: parameters, and multiply-accumulates counted by forward hooks on every Conv2d."""

from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: int) -> int:
    """MACs of one forward at (1, 3, S, S): Σ over Conv2d of out_elements × in_ch/groups × kh × kw.

    Convs dominate; BN (foldable), activations, resizes and adds are not counted. Works on the meta device.
    """
    total = 0

    def hook(module: nn.Conv2d, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.zeros(1, 3, input_size, input_size, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total


def summarize_variant(name: str, input_size: int | None = None) -> dict[str, object]:
    """Name, backbone, params, GMACs and input size of a registered variant (built on the meta device: no weights)."""
    from blitzmask_deploy.modeling.registry import create_model

    with torch.device("meta"):
        model = create_model(name)
    size = input_size or model.config.input_size
    return {
        "name": name,
        "params": count_params(model),
        "gmacs": round(count_macs(model, size) / 1e9, 4),
        "input_size": size,
        "backbone": model.config.backbone,
    }
