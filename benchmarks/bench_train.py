"""Training throughput of blitzmask-tiny at 320 (batch 16) and decode time as a fraction of model time.

Uses a small procedural dataset and the real training pipeline pieces (augmentation, targets, loss, AdamW); the
data cost is reported for a plain sample and for a 2×2 mosaic (the trainer's default sample), read from the files
and from a filled RAM cache (the trainer's default after the first reads).
Decode is timed on an untrained model with score threshold 0, where every one of the top-100 peaks is kept and
pasted: the worst case (a trained model keeps far fewer instances at the default 0.05). The first image is reported
apart: its decode loads the compiled kernels from numba's cache (or compiles them, once after installing).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANT, SIZE, BATCH, STEPS = "blitzmask-tiny", 320, 16, 4


def run() -> dict:
    import torch

    from blitzmask_deploy.data.cache import SampleCache
    from blitzmask_deploy.data.coco import CocoDataset
    from blitzmask_deploy.data.letterbox import letterbox_image
    from blitzmask_deploy.data.synthetic import generate_dataset
    from blitzmask_deploy.inference.decode import decode
    from blitzmask_deploy.inference.preprocess import to_input_tensor
    from blitzmask_deploy.inference.runtimes import TorchRuntime
    from blitzmask_deploy.modeling.registry import create_model
    from blitzmask_deploy.train.data import TrainSet, collate
    from blitzmask_deploy.train.loss import blitzmask_loss
    from blitzmask_deploy.train.optim import build_optimizer

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_dataset(Path(tmp), train=BATCH * 2, val=16, size=SIZE, seed=0, progress=False)
        train_ds = CocoDataset.from_split(root, "train")
        val_ds = CocoDataset.from_split(root, "val")
        model = create_model(VARIANT, num_classes=train_ds.num_classes, input_size=SIZE)
        model = model.to(memory_format=torch.channels_last)  # as the trainer does
        optimizer = build_optimizer(model, "adamw", 1e-2, 0.01)
        trainset = TrainSet(train_ds, SIZE, seed=0)
        t0 = time.perf_counter()
        batches = [collate([trainset[i] for i in range(b * BATCH, (b + 1) * BATCH)]) for b in range(2)]
        data_s = (time.perf_counter() - t0) / (2 * BATCH)
        mosaics = TrainSet(train_ds, SIZE, seed=0, mosaic=1.0)
        t0 = time.perf_counter()
        collate([mosaics[i] for i in range(BATCH)])
        mosaic_s = (time.perf_counter() - t0) / BATCH
        cache = SampleCache(train_ds)
        for i in range(len(cache)):  # fill it, as the first epoch does
            cache[i]
        cached_mosaics = TrainSet(cache, SIZE, seed=0, mosaic=1.0)
        t0 = time.perf_counter()
        collate([cached_mosaics[i] for i in range(BATCH)])
        cached_mosaic_s = (time.perf_counter() - t0) / BATCH
        step_times = []
        for step in range(STEPS + 1):
            images, targets = batches[step % 2]
            t0 = time.perf_counter()
            x = (images.float() / 255).contiguous(memory_format=torch.channels_last)
            loss, _ = blitzmask_loss(model(x), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step_times.append(time.perf_counter() - t0)
        step_s = float(np.median(step_times[1:]))  # first step warms up

        runtime = TorchRuntime(model.eval(), SIZE)
        model_ms, decode_ms, kept = [], [], []
        for i in range(len(val_ds)):
            boxed, info = letterbox_image(val_ds[i].image, SIZE)
            t0 = time.perf_counter()
            outputs = runtime(to_input_tensor(boxed)[None])
            t1 = time.perf_counter()
            instances = decode(outputs, info, score_threshold=0.0)
            t2 = time.perf_counter()
            model_ms.append((t1 - t0) * 1e3)
            decode_ms.append((t2 - t1) * 1e3)
            kept.append(len(instances))
    first_decode_s = decode_ms.pop(0) / 1e3  # loads (or, once after installing, compiles) the decode kernels
    model_ms.pop(0)
    model_p50, decode_p50 = float(np.median(model_ms)), float(np.median(decode_ms))
    return {
        "variant": VARIANT,
        "input_size": SIZE,
        "batch_size": BATCH,
        "threads": torch.get_num_threads(),
        "train_step_s": round(step_s, 3),
        "train_images_per_s": round(BATCH / step_s, 2),
        "augment_targets_ms_per_image": round(data_s * 1e3, 2),
        "mosaic_targets_ms_per_image": round(mosaic_s * 1e3, 2),
        "mosaic_from_ram_cache_ms_per_image": round(cached_mosaic_s * 1e3, 2),
        "model_ms_p50": round(model_p50, 2),
        "decode_ms_p50": round(decode_p50, 2),
        "decode_instances": int(np.median(kept)),
        "decode_first_call_s": round(first_decode_s, 2),
        "decode_fraction_of_model": round(decode_p50 / model_p50, 4),
        "decode_goal_met": decode_p50 / model_p50 <= 0.10,
    }
