"""Imperfect predictions made from ground truth, to exercise the evaluator (tests, `make bench`).

Each non-crowd ground-truth instance is dropped, shifted, eroded or dilated, relabelled, duplicated at
random, and given a jittered score; false positives borrowed from other images are added. The result is a
COCO results list whose AP lies strictly between 0 and 1 and touches every branch of the COCO protocol.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage

from blitzmask_deploy.core.masks import masks_to_rle, segmentation_to_rle


def perturb_predictions(
    gt: dict,
    rng: np.random.Generator,
    *,
    drop: float = 0.15,
    shift_px: int = 4,
    morph: float = 0.3,
    relabel: float = 0.05,
    duplicate: float = 0.2,
    false_positive: float = 0.3,
    with_bbox: bool = True,
) -> list[dict]:
    """COCO results derived from the COCO ground-truth dict `gt` (see the module docstring)."""
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    cat_ids = [c["id"] for c in gt["categories"]]
    anns = [a for a in gt["annotations"] if not a.get("iscrowd", 0)]
    results: list[dict] = []

    def add(mask: np.ndarray, image_id: int, category_id: int, score: float) -> None:
        if not mask.any():
            return
        rle = masks_to_rle(mask[None])[0]
        res = {"image_id": image_id, "category_id": category_id, "segmentation": rle, "score": float(score)}
        if with_bbox:
            res["bbox"] = [float(v) for v in mask_utils.toBbox(rle)]
        results.append(res)

    for ann in anns:
        h, w = sizes[ann["image_id"]]
        mask = _decode(segmentation_to_rle(ann["segmentation"], h, w))
        if rng.random() < drop:
            continue
        mask = _shift(mask, *rng.integers(-shift_px, shift_px + 1, 2))
        if rng.random() < morph:
            op = ndimage.binary_erosion if rng.random() < 0.5 else ndimage.binary_dilation
            mask = op(mask, iterations=int(rng.integers(1, 3)))
        cat = int(rng.choice(cat_ids)) if rng.random() < relabel else ann["category_id"]
        add(mask, ann["image_id"], cat, np.clip(rng.normal(0.7, 0.2), 0.01, 1.0))
        if rng.random() < duplicate:
            add(_shift(mask, *rng.integers(-2, 3, 2)), ann["image_id"], cat, rng.uniform(0.01, 0.6))
    image_ids = list(sizes)
    for ann in anns:
        if rng.random() >= false_positive:
            continue
        image_id = int(rng.choice(image_ids))
        src_h, src_w = sizes[ann["image_id"]]
        mask = _decode(segmentation_to_rle(ann["segmentation"], src_h, src_w))
        h, w = sizes[image_id]
        placed = np.zeros((h, w), bool)
        placed[: min(h, src_h), : min(w, src_w)] = mask[:h, :w]
        add(placed, image_id, int(rng.choice(cat_ids)), rng.uniform(0.01, 0.9))
    return results


def _decode(rle: dict) -> np.ndarray:
    return mask_utils.decode([rle])[:, :, 0].astype(bool)


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move a mask by (dy, dx) pixels; what leaves the image is lost."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = mask[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out
