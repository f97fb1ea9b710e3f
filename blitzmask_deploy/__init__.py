"""BlitzMask Deploy: train BlitzMask, export to TFLite/ONNX, validate host AP, benchmark on phones."""

from __future__ import annotations

from typing import Any

from blitzmask_deploy.core.version import VERSION as __version__

__all__ = ["__version__", "create_model"]


def create_model(name: str, **overrides: Any) -> Any:
    """Build a registered BlitzMask variant (lazy: importing the package does not import torch)."""
    from blitzmask_deploy.modeling.registry import create_model as _create

    return _create(name, **overrides)
