"""Inference through any Runtime: letterbox → runtime → decode → COCO results; over a dataset (then mask AP)
or over image files (overlays + predictions.json)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blitzmask_deploy.data.transforms import letterbox_image, to_input_tensor
from blitzmask_deploy.decode import decode, to_coco_results
from blitzmask_deploy.errors import BadInput
from blitzmask_deploy.validate.runtimes import Runtime


@dataclass
class PredictionRun:
    """COCO results of a run over a dataset, the image ids it covered and per-image runtime latency (ms)."""

    results: list[dict] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)


def predict_dataset(
    runtime: Runtime, dataset, *, max_images: int = 0, progress: bool = True, desc: str = ""
) -> PredictionRun:
    """Run `runtime` on the first `max_images` images of `dataset` (0 = all), one image per call."""
    n = len(dataset) if max_images <= 0 else min(max_images, len(dataset))
    run = PredictionRun()
    indices = range(n)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=desc or f"predict {runtime.name}", unit="img", file=sys.stderr, leave=False)
    for i in indices:
        sample = dataset[i]
        boxed, info = letterbox_image(sample.image, runtime.input_size)
        x = to_input_tensor(boxed)[None]
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


def evaluate_run(run: PredictionRun, dataset) -> dict:
    """COCO mask AP (coco_eval keys) of `run` against the dataset's ground truth for the images it covered."""
    from blitzmask_deploy.validate.coco_eval import evaluate

    return evaluate(gt_subset(dataset.coco, run.image_ids), run.results)


def latency_p50(run: PredictionRun) -> float:
    """Median runtime latency in ms (0.0 for an empty run)."""
    return float(np.median(run.latencies_ms)) if run.latencies_ms else 0.0


def read_image(path: Path) -> np.ndarray:
    """An image file as (H,W,3) uint8 RGB; missing or undecodable → BadInput."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise BadInput(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise BadInput(f"{path}: not a readable image ({type(err).__name__})") from None


def predict_images(ckpt: Path, images: list[Path], out: Path, *, score_threshold: float = 0.3) -> dict:
    """Predict each image with checkpoint `ckpt`: writes OUT/<stem>.png overlays and OUT/predictions.json
    (COCO results with `file_name`; image ids are 1.. in argument order). Returns a summary."""
    import json

    from blitzmask_deploy.checkpoint import load_checkpoint
    from blitzmask_deploy.report.overlay import save_overlay
    from blitzmask_deploy.validate.runtimes import TorchRuntime

    pixels = [read_image(Path(p)) for p in images]  # fail before any work on a bad file
    loaded = load_checkpoint(Path(ckpt))
    runtime = TorchRuntime(loaded.model, loaded.config.input_size)
    names = [c.get("name", str(c["id"])) for c in loaded.categories]
    ids = [int(c["id"]) for c in loaded.categories]
    results: list[dict] = []
    overlays = []
    for image_id, (path, image) in enumerate(zip(images, pixels, strict=True), start=1):
        boxed, info = letterbox_image(image, runtime.input_size)
        instances = decode(runtime(to_input_tensor(boxed)[None]), info, score_threshold=score_threshold)
        for result in to_coco_results(instances, image_id, ids):
            results.append({**result, "file_name": Path(path).name})
        overlays.append(str(save_overlay(out / f"{Path(path).stem}.png", image, instances, names)))
    out.mkdir(parents=True, exist_ok=True)
    (out / "predictions.json").write_text(json.dumps(results))
    return {"predictions": str(out / "predictions.json"), "overlays": overlays, "instances": len(results)}
