"""Evaluator speed: faster-coco-eval vs pycocotools on the same >= 5,000 perturbed predictions (same AP)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from blitzmask_deploy.data import coco_eval
from blitzmask_deploy.data.synthetic import generate_dataset
from tests.support.perturb import perturb_predictions

IMAGES = 600
SIZE = 320


def run() -> dict:
    """Time `evaluate` with both backends (mask and box AP) on a procedural val split; check equal figures."""
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_dataset(Path(tmp), train=0, val=IMAGES, size=SIZE, seed=11, progress=False)
        gt = json.loads((root / "annotations" / "instances_val.json").read_text())
    preds = perturb_predictions(gt, np.random.default_rng(0))
    seconds, results = {}, {}
    for backend in coco_eval.BACKENDS:
        start = time.perf_counter()
        results[backend] = coco_eval.evaluate(gt, preds, backend=backend)
        seconds[backend] = time.perf_counter() - start
    return {
        "images": IMAGES,
        "image_size": SIZE,
        "gt_instances": len(gt["annotations"]),
        "predictions": len(preds),
        "faster_coco_eval_s": round(seconds["faster"], 3),
        "pycocotools_s": round(seconds["pycocotools"], 3),
        "speedup": round(seconds["pycocotools"] / seconds["faster"], 2),
        "identical_ap": results["faster"] == results["pycocotools"],
        "mask_ap": results["faster"]["mask_ap"],
        "box_ap": results["faster"]["box_ap"],
    }
