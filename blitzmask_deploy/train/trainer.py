"""The trainer: epochs or a time budget, warm-up + cosine, grad clipping, EMA, AMP (CUDA), DDP, exact resume.

RUN/last.pt holds the EMA weights (the model for eval/export) plus the full training state; it is written at
every epoch end and when training stops. At the end rank 0 evaluates the EMA model on the val split and writes
RUN/metrics.json and RUN/best.pt (kept when an earlier best.pt scored higher).
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from blitzmask_deploy.core.checkpoints import read_checkpoint, save_checkpoint
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.folders import check_writable
from blitzmask_deploy.train.config import RESUME_KEYS, TrainConfig, recipe_for
from blitzmask_deploy.train.data import ResumableSampler, TrainSet, collate, lower_priority
from blitzmask_deploy.train.distributed import DistInfo, broadcast_float, init_distributed, shutdown
from blitzmask_deploy.train.ema import ModelEMA
from blitzmask_deploy.train.loss import blitzmask_loss
from blitzmask_deploy.train.optim import build_optimizer, lr_factor, set_lr

RUN_FILES = ("last.pt", "best.pt", "metrics.json")  # what a run writes into OUT; any of them marks an earlier run


def train(cfg: TrainConfig) -> dict:
    """Train as configured (options left as None come from the recipe for this hardware); returns the metrics
    written to RUN/metrics.json (rank 0) or {} (other ranks)."""
    from blitzmask_deploy.data.coco import CocoDataset
    from blitzmask_deploy.modeling.registry import create_model

    cfg.check()
    earlier = _earlier_run(cfg)
    check_writable(Path(cfg.out), "--out")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dist_info = init_distributed(device)
    if device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    cfg = cfg.resolved(recipe_for(device.type, dist_info.world))
    torch.set_num_threads(cfg.threads)
    try:
        train_ds = CocoDataset.from_split(Path(cfg.data), "train")
        val_ds = CocoDataset.from_split(Path(cfg.data), "val") if dist_info.is_main else None
        torch.manual_seed(cfg.seed)
        model = create_model(cfg.model, num_classes=train_ds.num_classes, input_size=cfg.input_size)
        model = model.to(device, memory_format=torch.channels_last)  # ~2× faster convs on CPU
        run = _Run(cfg, dist_info, device, model, train_ds, val_ds)
        if dist_info.is_main and cfg.progress:  # once every input is known good: a bad one is its one line
            print(cfg.recipe_line(_describe(device, dist_info)), file=sys.stderr, flush=True)
        if dist_info.is_main:  # --overwrite, once every input is known good: nothing of the earlier run may mix in
            for path in earlier:
                path.unlink(missing_ok=True)
        return run.run()
    finally:
        shutdown(dist_info)


def _earlier_run(cfg: TrainConfig) -> list[Path]:
    """The files of an earlier run in OUT that --overwrite replaces; BadInput when there are some and neither
    --resume nor --overwrite was given, or when OUT is not a folder."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out} exists and is not a folder: choose another --out")
    earlier = [out / name for name in RUN_FILES if (out / name).exists()]
    if earlier and not (cfg.resume or cfg.overwrite):
        names = ", ".join(p.name for p in earlier)
        raise BadInput(
            f"{cfg.out} holds an earlier run ({names}): pass --resume to continue it or --overwrite to start over"
        )
    return [] if cfg.resume else earlier


def _count(value: object) -> bool:
    """A number >= 0 (a bool is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


class _Run:
    """State of one training run (model, EMA, optimizer, counters) and its steps."""

    def __init__(self, cfg: TrainConfig, dist_info: DistInfo, device: torch.device, model, train_ds, val_ds) -> None:
        self.cfg, self.dist, self.device = cfg, dist_info, device
        self.model, self.train_ds, self.val_ds = model, train_ds, val_ds
        self.out = Path(cfg.out)
        by_id = {c["id"]: c for c in train_ds.categories}
        self.categories = [by_id[i] for i in train_ds.cat_index_to_id]
        self.ema = ModelEMA(model, cfg.ema_decay)
        self.optimizer = build_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay)
        self.state = {"epoch": 0, "step_in_epoch": 0, "step": 0, "elapsed_s": 0.0, "images": 0}
        self.per_rank_batch = max(1, cfg.batch_size // dist_info.world)
        self.steps_per_epoch = (len(train_ds) // dist_info.world) // self.per_rank_batch
        if self.steps_per_epoch < 1:
            raise BadInput(f"{len(train_ds)} training images are fewer than one batch of {cfg.batch_size}")
        self.total_steps = cfg.epochs * self.steps_per_epoch if cfg.epochs else None
        self.total_s = cfg.minutes * 60 if cfg.minutes else None
        if cfg.resume:
            self._load_last()
        self.ddp = model
        if dist_info.enabled:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )

    # -- checkpoints -------------------------------------------------------------------------------------------
    def _load_last(self) -> None:
        path = self.out / "last.pt"
        checkpoint = read_checkpoint(path)
        train_state = checkpoint.extra.get("train")
        if not train_state:
            raise BadInput(f"{path}: no training state to resume from")
        try:
            saved = train_state["config"]
            changed = [k for k in RESUME_KEYS if saved.get(k) != self.cfg.to_dict().get(k)]
            if changed:
                raise BadInput(f"cannot resume {path}: options changed ({', '.join(changed)})")
            self.model.load_state_dict(train_state["model"])
            self.ema.module.load_state_dict(checkpoint.state_dict)
            self.ema.updates = int(train_state["ema_updates"])
            self.optimizer.load_state_dict(train_state["optimizer"])
            state = dict(train_state["state"])
            if not (set(self.state) <= set(state) and all(_count(v) for v in state.values())):
                raise ValueError(f"its counters {state!r:.200} are not numbers >= 0")
            self.state = state
            torch.set_rng_state(train_state["rng"]["torch"])
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as err:
            reason = " ".join(str(err).split())[:200] or type(err).__name__
            raise BadInput(f"{path}: its training state cannot be resumed ({type(err).__name__}: {reason})") from None

    def _save_last(self, metrics: dict | None = None) -> None:
        if not self.dist.is_main:
            return
        train_state = {
            "model": self.model.state_dict(),
            "ema_updates": self.ema.updates,
            "optimizer": self.optimizer.state_dict(),
            "state": dict(self.state),
            "rng": {"torch": torch.get_rng_state()},
            "config": self.cfg.to_dict(),
        }
        save_checkpoint(
            self.out / "last.pt",
            self.ema.module,
            categories=self.categories,
            extra={"train": train_state, "metrics": metrics or {}},
        )

    # -- loop --------------------------------------------------------------------------------------------------
    def _progress(self) -> float:
        if self.total_steps:
            return self.state["step"] / self.total_steps
        return self.state["elapsed_s"] / self.total_s

    def _epoch_mosaic(self) -> float:
        """Mosaic probability of an epoch starting now: none once the last `close_mosaic` of training has begun."""
        return 0.0 if self._progress() >= 1 - self.cfg.close_mosaic else self.cfg.mosaic

    def _finished(self) -> bool:
        if self.total_steps:
            return self.state["step"] >= self.total_steps
        return self.state["elapsed_s"] >= self.total_s

    def _train_source(self):
        """The training split, read through a shared RAM cache when `cache` is on and it fits."""
        from blitzmask_deploy.data.cache import SampleCache, cache_refusal

        if not self.cfg.cache:
            return self.train_ds
        cache = SampleCache(self.train_ds)
        refusal = cache_refusal(cache, self.dist.local_world)
        if refusal is None:
            return cache
        if self.dist.is_main:
            print(f"not caching the training images in RAM: {refusal}", file=sys.stderr)
        return self.train_ds

    def _loader(self, trainset: TrainSet) -> DataLoader:
        from blitzmask_deploy.data.cache import SampleCache

        sampler = ResumableSampler(
            len(trainset),
            seed=self.cfg.seed,
            epoch=self.state["epoch"],
            rank=self.dist.rank,
            world=self.dist.world,
            start=self.state["step_in_epoch"] * self.per_rank_batch,
        )
        return DataLoader(
            trainset,
            batch_size=self.per_rank_batch,
            sampler=sampler,
            num_workers=self.cfg.workers,
            collate_fn=collate,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            # on CPU the workers share the cores with the training threads; on a GPU box they must keep up
            worker_init_fn=lower_priority if self.device.type == "cpu" else None,
            # forked workers share the RAM cache's memory map (which spawned ones could not receive)
            multiprocessing_context="fork" if self.cfg.workers and isinstance(trainset.dataset, SampleCache) else None,
        )

    def _step(self, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        set_lr(self.optimizer, cfg.lr * lr_factor(self._progress()))
        x = images.to(self.device, non_blocking=True).float().div_(255.0).contiguous(memory_format=torch.channels_last)
        targets = {k: v.to(self.device, non_blocking=True) for k, v in targets.items()}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            outputs = self.ddp(x)
        loss, parts = blitzmask_loss(outputs, targets, stride=self.model.config.output_stride)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_norm)
        self.optimizer.step()
        self.ema.update(self.model)
        parts["loss"] = float(loss.detach())
        return parts

    def run(self) -> dict:
        cfg = self.cfg
        trainset = TrainSet(self._train_source(), cfg.input_size, cfg.seed, stride=self.model.config.output_stride)
        bar = self._bar()
        start = time.perf_counter() - self.state["elapsed_s"]
        images_at_start, elapsed_at_start = self.state["images"], self.state["elapsed_s"]
        stopped = False
        while not self._finished() and not stopped:
            trainset.epoch = self.state["epoch"]
            if self.state["step_in_epoch"] == 0:  # decided once per epoch and saved, so a resume repeats it
                self.state["mosaic"] = self._epoch_mosaic()
            trainset.mosaic = self.state["mosaic"]
            for images, targets in self._loader(trainset):
                parts = self._step(images, targets)
                self.state["step"] += 1
                self.state["step_in_epoch"] += 1
                self.state["images"] += len(images) * self.dist.world
                self.state["elapsed_s"] = broadcast_float(time.perf_counter() - start, self.dist, self.device)
                rate = (self.state["images"] - images_at_start) / max(1e-9, self.state["elapsed_s"] - elapsed_at_start)
                if bar is not None:
                    bar.n = self.state["step"] if self.total_steps else round(self.state["elapsed_s"])
                    losses = {k: f"{v:.3f}" for k, v in parts.items()}
                    bar.set_postfix(losses, img_s=f"{rate:.1f}", epoch=self.state["epoch"])
                if cfg.stop_at_step is not None and self.state["step"] >= cfg.stop_at_step:
                    stopped = True
                    break
                if self._finished():
                    break
            else:
                self.state["epoch"] += 1
                self.state["step_in_epoch"] = 0
                self._save_last()
        if bar is not None:
            bar.close()
        self._save_last()
        if stopped or not self.dist.is_main:
            return {}
        return self._finish()

    def _bar(self):
        if not (self.cfg.progress and self.dist.is_main):
            return None
        from tqdm import tqdm

        total = self.total_steps or round(self.total_s)
        unit = "step" if self.total_steps else "s"
        desc = f"train {self.cfg.model}"
        bar = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True, disable=None)
        bar.n = self.state["step"] if self.total_steps else round(self.state["elapsed_s"])
        return bar

    def _finish(self) -> dict:
        from blitzmask_deploy.inference.dataset import evaluate_run, predict_dataset
        from blitzmask_deploy.inference.runtimes import TorchRuntime

        cfg = self.cfg
        eval_model = copy.deepcopy(self.ema.module).cpu().float()
        runtime = TorchRuntime(eval_model, cfg.input_size)
        run = predict_dataset(
            runtime, self.val_ds, max_images=cfg.eval_max_images, progress=cfg.progress, desc="val (EMA)"
        )
        metrics = evaluate_run(run, self.val_ds)
        elapsed = self.state["elapsed_s"]
        metrics.update(
            {
                "model": cfg.model,
                "input_size": cfg.input_size,
                "batch_size": cfg.batch_size,
                "lr": cfg.lr,
                "optimizer": cfg.optimizer,
                "world_size": self.dist.world,
                "epochs": round(self.state["step"] / self.steps_per_epoch, 3),
                "steps": self.state["step"],
                "minutes": round(elapsed / 60, 3),
                "images_per_s": round(self.state["images"] / max(elapsed, 1e-9), 2),
                "val_images": len(run.image_ids),
            }
        )
        self._save_last(metrics)
        best = self.out / "best.pt"
        previous = read_checkpoint(best).metrics if best.exists() else {}
        if metrics.get("mask_ap", 0.0) >= previous.get("mask_ap", -1.0):
            save_checkpoint(best, self.ema.module, categories=self.categories, extra={"metrics": metrics})
        (self.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        return metrics


def _describe(device: torch.device, dist_info: DistInfo) -> str:
    """'cpu (2 cores)' or 'cuda (NVIDIA H100 ...)', with the number of processes when there are several."""
    what = f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"
    return what + (f", {dist_info.world} processes" if dist_info.enabled else "")
