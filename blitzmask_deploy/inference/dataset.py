"""Inference over a dataset through any Runtime: preprocess → runtime → decode → COCO results, then mask AP."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from blitzmask_deploy.data.coco import CocoDataset
from blitzmask_deploy.inference.decode import decode, to_coco_results
from blitzmask_deploy.inference.preprocess import preprocess
from blitzmask_deploy.inference.runtimes import Runtime


@dataclass
class PredictionRun:
    """COCO results of a run over a dataset, the image ids it covered and per-image runtime latency (ms)."""

    results: list[dict] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)


def predict_dataset(
    runtime: Runtime, dataset: CocoDataset, *, max_images: int = 0, progress: bool = True, desc: str = ""
) -> PredictionRun:
    """Run `runtime` on the first `max_images` images of `dataset` (0 = all), one image per call."""
    n = len(dataset) if max_images <= 0 else min(max_images, len(dataset))
    run = PredictionRun()
    indices = range(n)
    if progress:
        from tqdm import tqdm

        desc = desc or f"predict {runtime.name}"
        indices = tqdm(indices, desc=desc, unit="img", file=sys.stderr, leave=False, disable=None)
    for i in indices:
        sample = dataset[i]
        x, info = preprocess(sample.image, runtime.input_size)
        t0 = time.perf_counter()
        outputs = runtime(x)
        run.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
        instances = decode(outputs, info)
        run.results.extend(to_coco_results(instances, sample.image_id, dataset.cat_index_to_id))
        run.image_ids.append(int(sample.image_id))
    return run


def gt_subset(coco: dict, image_ids: list[int]) -> dict:
    """The COCO ground truth restricted to `image_ids` (all categories kept)."""
    keep = set(image_ids)
    out = dict(coco)
    out["images"] = [im for im in coco["images"] if im["id"] in keep]
    out["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    return out


def evaluate_run(run: PredictionRun, dataset: CocoDataset) -> dict:
    """COCO mask AP (coco_eval keys) of `run` against the dataset's ground truth for the images it covered."""
    from blitzmask_deploy.data.coco_eval import evaluate

    return evaluate(gt_subset(dataset.coco, run.image_ids), run.results)


def latency_p50(run: PredictionRun) -> float:
    """Median runtime latency in ms (0.0 for an empty run)."""
    return float(np.median(run.latencies_ms)) if run.latencies_ms else 0.0
