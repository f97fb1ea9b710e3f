"""Registry of BlitzMask variants: `create_model(name, **overrides)`, `variant_config`, `list_variants`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blitzmask_deploy.errors import BadInput
from blitzmask_deploy.modeling.config import ModelConfig

if TYPE_CHECKING:
    from blitzmask_deploy.modeling.blitzmask import BlitzMask

# EfficientNet-Lite width/depth multipliers (lite0..lite4); neck/head widths grow from 64 (b0) to 96 (b4).
_LITE = {0: (1.0, 1.0, 64), 1: (1.0, 1.1, 64), 2: (1.1, 1.2, 80), 3: (1.2, 1.4, 80), 4: (1.4, 1.8, 96)}

_VARIANTS: dict[str, ModelConfig] = {
    "blitzmask-tiny": ModelConfig(
        variant="blitzmask-tiny",
        backbone="efficientnet-lite-tiny",
        width_mult=0.35,
        depth_mult=0.34,
        neck_channels=32,
        head_channels=32,
        head_convs=0,  # 1×1 heads on the neck: 1.6× the training throughput of one conv per head
    ),
    **{
        f"blitzmask-b{i}": ModelConfig(
            variant=f"blitzmask-b{i}",
            backbone=f"efficientnet-lite{i}",
            width_mult=w,
            depth_mult=d,
            neck_channels=c,
            head_channels=c,
            head_convs=2,
        )
        for i, (w, d, c) in _LITE.items()
    },
}


def list_variants() -> list[str]:
    """Registered variant names, smallest first."""
    return list(_VARIANTS)


def variant_config(name: str, **overrides: Any) -> ModelConfig:
    """The default config of variant `name` with `overrides` applied (unknown name or field → BadInput)."""
    if name not in _VARIANTS:
        raise BadInput(f"unknown model {name!r} (choose from {', '.join(_VARIANTS)})")
    return _VARIANTS[name].replace(**overrides) if overrides else _VARIANTS[name]


def create_model(name: str, **overrides: Any) -> BlitzMask:
    """Build variant `name` (randomly initialised); any ModelConfig field can be overridden."""
    from blitzmask_deploy.modeling.blitzmask import BlitzMask

    return BlitzMask(variant_config(name, **overrides))
