"""Checkpoint files: a plain dict of tensors and builtins, written atomically, read with `weights_only=True`.

Layout: {"format": "blitzmask-checkpoint", "version": 1, "config": ModelConfig dict, "state_dict": weights
(the EMA weights when training used EMA: the model for eval and export), "categories": COCO category dicts in
class-index order (index i of the model's classes is the dataset's category `categories[i]["id"]`), "extra": dict
(metrics, training state for resume)}. Anything else → BadInput. Building the model from a checkpoint is
`modeling.registry.model_from_checkpoint`; this module only reads and writes the file.
"""

from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blitzmask_deploy.core.artifacts import sha256_file
from blitzmask_deploy.core.errors import BadInput

FORMAT = "blitzmask-checkpoint"
VERSION = 1


@dataclass
class CheckpointFile:
    """A checkpoint as read from disk: the model's config dict and weights, the categories and the extras."""

    path: Path
    sha256: str
    config: dict[str, Any]
    state_dict: dict[str, Any]
    categories: list[dict]
    extra: dict = field(default_factory=dict)

    @property
    def metrics(self) -> dict:
        """Evaluation figures saved with the weights ({} when none)."""
        return dict(self.extra.get("metrics") or {})


def save_checkpoint(path: Path, model: Any, *, categories: list[dict], extra: dict | None = None) -> Path:
    """Write `model`'s weights and config (`model.config.to_dict()`), `categories` and `extra` to `path` atomically
    (a DDP wrapper is unwrapped)."""
    import torch

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


def read_checkpoint(path: Path, *, map_location: str = "cpu") -> CheckpointFile:
    """The checkpoint at `path`, checked for our format; foreign or corrupt files → BadInput."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch's notes on a foreign file's pickle protocol: the line below says it
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused to build an object: the pickle is never run
        raise BadInput(f"{path}: not a BlitzMask checkpoint (it holds Python objects other than weights)") from None
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
    extra = payload.get("extra") or {}
    if not isinstance(payload["config"], dict) or not isinstance(payload["state_dict"], dict):
        raise BadInput(f"{path}: checkpoint config and state_dict must be mappings")
    if not isinstance(extra, dict):
        raise BadInput(f"{path}: checkpoint 'extra' must be a mapping")
    for key, value in payload["state_dict"].items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise BadInput(f"{path}: checkpoint weight {key} holds NaN or infinite values")
    return CheckpointFile(
        path=path,
        sha256=sha256_file(path),
        config=payload["config"],
        state_dict=payload["state_dict"],
        categories=_categories(payload["categories"], path),
        extra=extra,
    )


def _categories(categories: Any, path: Path) -> list[dict]:
    """The checkpoint's categories: a list of {"id": int, "name": str, ...} with unique ids."""
    if not isinstance(categories, list) or not categories:
        raise BadInput(f"{path}: checkpoint categories must be a non-empty list")
    seen: set[int] = set()
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or isinstance(cat.get("id"), bool):
            raise BadInput(f"{path}: checkpoint categories[{i}] must be an object with an integer id")
        if cat["id"] in seen:
            raise BadInput(f"{path}: checkpoint categories[{i}] repeats id {cat['id']}")
        seen.add(cat["id"])
    return [dict(c) for c in categories]
