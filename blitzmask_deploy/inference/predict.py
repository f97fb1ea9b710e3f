"""`blitzmask predict`: a checkpoint on image files → overlays (PNG) and COCO results (predictions.json)."""

from __future__ import annotations

import json
from pathlib import Path

from blitzmask_deploy.core.checkpoints import read_checkpoint
from blitzmask_deploy.core.folders import check_writable
from blitzmask_deploy.data.images import read_image
from blitzmask_deploy.inference.decode import decode, to_coco_results
from blitzmask_deploy.inference.overlay import save_overlay
from blitzmask_deploy.inference.preprocess import preprocess
from blitzmask_deploy.inference.runtimes import TorchRuntime
from blitzmask_deploy.modeling.registry import model_from_checkpoint


def predict_images(ckpt: Path, images: list[Path], out: Path, *, score_threshold: float = 0.3) -> dict:
    """Predict each image with checkpoint `ckpt`: writes OUT/<stem>.png overlays and OUT/predictions.json
    (COCO results with `file_name` and the checkpoint's category ids; image ids are 1.. in argument order).
    Returns a summary."""
    check_writable(out, "--out")
    pixels = [read_image(Path(p)) for p in images]  # fail before any work on a bad file
    checkpoint = read_checkpoint(Path(ckpt))
    model = model_from_checkpoint(checkpoint)
    runtime = TorchRuntime(model, model.config.input_size)
    names = [c.get("name", str(c["id"])) for c in checkpoint.categories]
    ids = [int(c["id"]) for c in checkpoint.categories]
    results: list[dict] = []
    overlays = []
    for image_id, (path, image) in enumerate(zip(images, pixels, strict=True), start=1):
        x, info = preprocess(image, runtime.input_size)
        instances = decode(runtime(x), info, score_threshold=score_threshold)
        for result in to_coco_results(instances, image_id, ids):
            results.append({**result, "file_name": Path(path).name})
        overlays.append(str(save_overlay(out / f"{Path(path).stem}.png", image, instances, names)))
    out.mkdir(parents=True, exist_ok=True)
    (out / "predictions.json").write_text(json.dumps(results))
    return {"predictions": str(out / "predictions.json"), "overlays": overlays, "instances": len(results)}
