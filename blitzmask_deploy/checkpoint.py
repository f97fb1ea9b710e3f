"""BlitzMask checkpoints: a plain dict of tensors and builtins, written atomically, read with `weights_only=True`.

Layout: {"format": "blitzmask-checkpoint", "version": 1, "config": ModelConfig dict, "state_dict": weights
(the EMA weights when training used EMA: the model for eval and export), "categories": COCO category dicts,
"extra": dict (metrics, training state for resume)}. Anything else → BadInput.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from blitzmask_deploy.artifacts import sha256_file
from blitzmask_deploy.errors import BadInput

FORMAT = "blitzmask-checkpoint"
VERSION = 1


@dataclass
class LoadedCheckpoint:
    """A loaded checkpoint: `model` in eval mode with the saved (EMA) weights, and what came with it."""

    model: torch.nn.Module
    config: Any
    categories: list[dict]
    sha256: str
    path: Path
    metrics: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def save_checkpoint(path: Path, model: torch.nn.Module, *, categories: list[dict], extra: dict | None = None) -> Path:
    """Write `model`'s weights and config (plus `categories` and `extra`) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = getattr(model, "module", model)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": module.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "categories": [dict(c) for c in categories],
        "extra": extra or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: Path, *, map_location: str = "cpu") -> dict:
    """The raw checkpoint dict, checked for our format; foreign or corrupt files → BadInput."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BadInput(f"{path}: not a readable checkpoint ({reason[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BadInput(f"{path}: not a BlitzMask checkpoint (no '{FORMAT}' format tag)")
    if payload.get("version") != VERSION:
        raise BadInput(f"{path}: unsupported checkpoint version {payload.get('version')!r} (expected {VERSION})")
    missing = [k for k in ("config", "state_dict", "categories") if k not in payload]
    if missing:
        raise BadInput(f"{path}: checkpoint lacks {', '.join(missing)}")
    return payload


def build_model(config: dict) -> torch.nn.Module:
    """A fresh model from a saved ModelConfig dict."""
    from blitzmask_deploy.modeling.config import ModelConfig
    from blitzmask_deploy.modeling.registry import create_model

    cfg = ModelConfig.from_dict(config).to_dict()
    variant = cfg.pop("variant")
    return create_model(variant, **cfg)


def load_checkpoint(path: Path, *, map_location: str = "cpu") -> LoadedCheckpoint:
    """Load a checkpoint into a model in eval mode (weights_only=True); foreign or corrupt → BadInput."""
    path = Path(path)
    payload = read_checkpoint(path, map_location=map_location)
    model = build_model(payload["config"])
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError) as err:
        raise BadInput(f"{path}: weights do not match the saved config ({str(err).splitlines()[0][:200]})") from None
    model.eval()
    extra = payload.get("extra") or {}
    return LoadedCheckpoint(
        model=model,
        config=model.config,
        categories=list(payload["categories"]),
        sha256=sha256_file(path),
        path=path,
        metrics=dict(extra.get("metrics") or {}),
        extra=extra,
    )
