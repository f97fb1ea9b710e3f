"""Quantisation benchmark: blitzmask-tiny trained with the README's 8-minute recipe, exported to full int8 and on
an AP budget.

Figures (host mask AP on the val split of the README's procedural dataset, LiteRT CPU vs the checkpoint in PyTorch,
both on 2 threads):
- `checkpoint_mask_ap`: the checkpoint (0-1), trained for `train_minutes` minutes (the CPU recipe) on
  `train_images` images (`BLITZMASK_BENCH_CHECKPOINT` and `BLITZMASK_BENCH_DATA` name an existing checkpoint and
  its dataset instead: nothing is trained);
- `full_int8.*` and `budget.*` (`--int8-budget BUDGET_POINTS`): `mask_ap_drop_points` (AP points lost against the
  checkpoint), `int8_mac_share` (share of conv/depthwise/FC MACs in full int8), `ops_not_int8`,
  `activation_headroom`, `export_s` (wall time of the export, calibration and the budget search included).
The model must be trained: an untrained model's outputs are near constant and say nothing about quantisation.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

VARIANT, SIZE, THREADS = "blitzmask-tiny", 320, 2
TRAIN_IMAGES, VAL_IMAGES, MINUTES = 2000, 200, 8.0  # the README's recipe
CALIB_IMAGES = 128
BUDGET_POINTS = 0.1


def run() -> dict:
    """Train, export full int8 and on the AP budget, and measure both against the checkpoint."""
    import torch

    from blitzmask_deploy.data.synthetic import generate_dataset

    torch.set_num_threads(THREADS)
    results: dict = {
        "variant": VARIANT,
        "input_size": SIZE,
        "calib_images": CALIB_IMAGES,
        "budget_points": BUDGET_POINTS,
    }
    with tempfile.TemporaryDirectory(prefix="bench_quant_") as tmp:
        root = Path(tmp)
        given = os.environ.get("BLITZMASK_BENCH_CHECKPOINT"), os.environ.get("BLITZMASK_BENCH_DATA")
        if all(given):
            ckpt, data = Path(given[0]), Path(given[1])
            results |= {"checkpoint": str(ckpt), "data": str(data)}
        else:
            results |= {"train_minutes": MINUTES, "train_images": TRAIN_IMAGES, "val_images": VAL_IMAGES}
            data = generate_dataset(
                root / "data", train=TRAIN_IMAGES, val=VAL_IMAGES, size=SIZE, seed=0, progress=False
            )
            start = time.perf_counter()
            ckpt = _train(data, root / "run")
            results["train_s"] = round(time.perf_counter() - start, 1)
        reference = _checkpoint_ap(ckpt, data)
        results["checkpoint_mask_ap"] = round(reference, 4)
        for name, budget in (("full_int8", None), ("budget", BUDGET_POINTS)):
            figures = _export(ckpt, data, root / name, budget, reference)
            results.update({f"{name}.{key}": value for key, value in figures.items()})
    return results


def _train(data: Path, out: Path) -> Path:
    """blitzmask-tiny trained for MINUTES minutes on `data` (the recipe for this hardware); its best checkpoint."""
    from blitzmask_deploy.train.config import TrainConfig
    from blitzmask_deploy.train.trainer import train

    train(TrainConfig(data=data, model=VARIANT, out=out, minutes=MINUTES, input_size=SIZE, threads=THREADS))
    return out / "best.pt"


def _checkpoint_ap(ckpt: Path, data: Path) -> float:
    from blitzmask_deploy.core.checkpoints import read_checkpoint
    from blitzmask_deploy.data.coco import CocoDataset
    from blitzmask_deploy.inference.dataset import evaluate_run, predict_dataset
    from blitzmask_deploy.inference.runtimes import TorchRuntime
    from blitzmask_deploy.modeling.registry import model_from_checkpoint

    dataset = CocoDataset.from_split(data, "val")
    model = model_from_checkpoint(read_checkpoint(ckpt)).eval()
    run = predict_dataset(TorchRuntime(model, SIZE), dataset, progress=False)
    return float(evaluate_run(run, dataset)["mask_ap"])


def _export(ckpt: Path, data: Path, out: Path, budget: float | None, reference: float) -> dict:
    """Export `ckpt` to int8 (on `budget` AP points when given); the int8 file's AP drop, MAC share, export time."""
    from blitzmask_deploy.data.coco import CocoDataset
    from blitzmask_deploy.export.pipeline import export_checkpoint
    from blitzmask_deploy.export.quant_debug import file_ap

    start = time.perf_counter()
    manifest = export_checkpoint(
        ckpt, out, formats=["int8"], calib=data, calib_images=CALIB_IMAGES, int8_budget=budget, progress=True
    )
    export_s = time.perf_counter() - start
    entry = manifest.file("tflite-int8")
    ap = file_ap(out / entry.file, CocoDataset.from_split(data, "val"), threads=THREADS)
    return {
        "mask_ap_drop_points": round(100 * (reference - ap), 3),
        "int8_mac_share": entry.int8_mac_share,
        "ops_not_int8": len(entry.op_precisions or []),
        "activation_headroom": entry.activation_headroom,
        "export_s": round(export_s, 1),
    }
