"""`TrainConfig` (the options of `blitzmask train`) and the recipe that fills the options a user left out.

The recipe is the best measured for the hardware the run is on (docs/experiments.md): on CPU, many small steps
(batch 4 per process, Muon + AdamW at lr 2e-2, the cores split between the processes); on CUDA, large batches
(32 per GPU, AdamW at lr 2e-2, more loader workers). Every recipe value is overridable by its option.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from blitzmask_deploy.core.artifacts import MAX_INPUT_SIZE
from blitzmask_deploy.core.errors import BadInput

OPTIMIZERS = ("adamw", "sgd", "muon")


@dataclass(frozen=True)
class Recipe:
    """Batch (global), peak learning rate, optimizer, torch threads and loader workers of one process."""

    batch_size: int
    lr: float
    optimizer: str
    threads: int
    workers: int


def recipe_for(device_type: str, world: int = 1, cpu_count: int | None = None) -> Recipe:
    """The measured recipe for `device_type` ("cpu" or "cuda") with `world` processes on `cpu_count` cores.

    More processes take a proportionally larger global batch with the learning rate scaled by √world."""
    cores = max(1, (cpu_count or os.cpu_count() or 1) // max(1, world))
    if device_type == "cuda":
        return Recipe(32 * world, 2e-2 * math.sqrt(world), "adamw", cores, min(8, cores))
    return Recipe(4 * world, 2e-2 * math.sqrt(world), "muon", cores, 2)


@dataclass(frozen=True)
class TrainConfig:
    """Options of `blitzmask train`. `None` means "the recipe's value" (`resolved` fills them in); batch_size is
    the global batch, split across DDP ranks."""

    data: Path
    model: str
    out: Path
    epochs: int | None = None
    minutes: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    weight_decay: float = 0.01
    input_size: int = 320
    resume: bool = False
    overwrite: bool = False  # start over in an `out` that holds an earlier run (its files are deleted)
    workers: int | None = None
    threads: int | None = None  # torch threads per process
    seed: int = 0
    mosaic: float = 1.0  # probability that a training sample is a 2×2 mosaic (data/transforms.mosaic_transform)
    close_mosaic: float = 0.1  # no mosaics in epochs that start in the last 10 % of training (YOLO's close_mosaic)
    cache: bool = True  # decoded training images in a RAM cache shared by the workers, when it fits (data/cache.py)
    clip_norm: float = 5.0
    ema_decay: float = 0.9998
    eval_max_images: int = 0
    progress: bool = True
    stop_at_step: int | None = None  # stop (and save last.pt) after this global step, as an interruption would

    def check(self) -> None:
        """BadInput for options that cannot train."""
        if (self.epochs is None) == (self.minutes is None):
            raise BadInput("give exactly one of --epochs or --minutes")
        if (self.epochs is not None and self.epochs < 1) or (self.minutes is not None and not self.minutes > 0):
            raise BadInput("--epochs must be ≥ 1 and --minutes > 0")
        if self.minutes is not None and not math.isfinite(self.minutes):
            raise BadInput("--minutes must be a finite number")
        if self.batch_size is not None and self.batch_size < 1:
            raise BadInput("--batch-size must be ≥ 1")
        if not 32 <= self.input_size <= MAX_INPUT_SIZE or self.input_size % 32:
            raise BadInput(f"--input-size must be a multiple of 32 from 32 to {MAX_INPUT_SIZE}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise BadInput("--lr must be a positive number")
        if self.resume and self.overwrite:
            raise BadInput("give at most one of --resume and --overwrite")
        if not 0 <= self.seed < 2**32:
            raise BadInput(f"--seed must be from 0 to {2**32 - 1}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise BadInput(f"unknown optimizer {self.optimizer!r} (choose from {', '.join(OPTIMIZERS)})")
        if not 0 <= self.mosaic <= 1 or not 0 <= self.close_mosaic <= 1:
            raise BadInput("--mosaic and --close-mosaic must be between 0 and 1")
        if (self.threads is not None and not 1 <= self.threads <= 1024) or (
            self.workers is not None and not 0 <= self.workers <= 256
        ):
            raise BadInput("--threads must be 1 to 1024 and --workers 0 to 256")

    def resolved(self, recipe: Recipe) -> TrainConfig:
        """This config with every option left as None taken from `recipe`."""
        chosen = {k: v for k, v in asdict(recipe).items() if getattr(self, k) is None}
        return replace(self, **chosen)

    def recipe_line(self, device: str) -> str:
        """One line naming the resolved recipe, printed when training starts."""
        return (
            f"recipe on {device}: batch {self.batch_size}, lr {self.lr:g}, optimizer {self.optimizer}, "
            f"{self.threads} threads, {self.workers} loader workers "
            "(override with --batch-size, --lr, --optimizer, --threads, --workers)"
        )

    def to_dict(self) -> dict[str, Any]:
        """Every option as JSON-friendly builtins (paths as strings): what a checkpoint stores."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


# Options that must match between a run and its resume.
RESUME_KEYS = ("model", "batch_size", "input_size", "optimizer", "epochs", "minutes", "seed", "mosaic", "close_mosaic")
