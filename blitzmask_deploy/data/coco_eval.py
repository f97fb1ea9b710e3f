"""COCO mask AP (and box AP) with faster-coco-eval, or pycocotools for cross-checks.

`evaluate(gt, predictions)` takes a COCO ground-truth JSON (path or dict) and COCO results (path or list of
dicts with `image_id`, `category_id`, `score`, RLE `segmentation`, optional `bbox` xywh) and returns the seven
summary figures as fractions in [0, 1]. Both backends run the same COCO protocol (10 IoU thresholds, 100
detections per image, small/medium/large area ranges); an area range without ground truth scores 0.0 rather
than COCO's -1. Figures are rounded to 12 decimals: faster-coco-eval accumulates precision in C++ and
pycocotools in numpy, and their precision tables differ by up to one float ulp (~1e-16); rounded, the two
backends agree exactly. Inputs are deep-copied: the caller's objects are never modified.
"""

from __future__ import annotations

import contextlib
import io
import json
import numbers
import pickle
from pathlib import Path
from typing import Any

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.masks import check_compressed_rles
from blitzmask_deploy.data.coco_check import check_coco

METRIC_KEYS = ("mask_ap", "mask_ap50", "mask_ap75", "mask_ap_small", "mask_ap_medium", "mask_ap_large", "box_ap")
BACKENDS = ("faster", "pycocotools")
_REQUIRED = ("image_id", "category_id", "score", "segmentation")
DECIMALS = 12


def evaluate(gt: Path | dict, predictions: Path | list[dict], *, backend: str = "faster") -> dict[str, Any]:
    """COCO metrics of `predictions` against `gt`: mask AP @[.5:.95], @.5, @.75, small/medium/large; box AP.

    `box_ap` is None when the predictions carry no `bbox`; empty predictions score 0.0 on every figure. As in
    COCO's loadRes, a detection's area (for the small/medium/large ranges) is its box area when boxes are given.
    Unknown image ids or category ids, missing keys, corrupt RLE and unreadable files are BadInput.
    """
    if backend not in BACKENDS:
        raise BadInput(f"unknown evaluation backend {backend!r} (choose from {', '.join(BACKENDS)})")
    gt_dict = gt if isinstance(gt, dict) else _read_json(Path(gt), "ground truth")
    preds = predictions if isinstance(predictions, list) else _read_json(Path(predictions), "predictions")
    check_coco(gt_dict, Path(gt) if not isinstance(gt, dict) else Path("<ground truth>"))
    _check_predictions(preds, gt_dict)
    if not preds:
        return dict.fromkeys(METRIC_KEYS, 0.0)
    has_box = all("bbox" in p for p in preds)
    if not has_box:  # a partial set of boxes would change how the libraries compute detection areas
        preds = [{k: v for k, v in p.items() if k != "bbox"} for p in preds]
    stats = _run(gt_dict, preds, "segm", backend)
    result = dict(zip(METRIC_KEYS[:6], stats[:6], strict=True))
    result["box_ap"] = _run(gt_dict, preds, "bbox", backend)[0] if has_box else None
    return result


def _run(gt: dict, preds: list[dict], iou_type: str, backend: str) -> list[float]:
    """Run one COCO evaluation quietly; the first six summary stats, -1 (no GT) mapped to 0.0, rounded."""
    gt, preds = _copy(gt), _copy(preds)  # both libraries annotate their inputs in place
    with contextlib.redirect_stdout(io.StringIO()):
        if backend == "faster":
            from faster_coco_eval import COCO, COCOeval_faster

            coco_gt = COCO(gt)
            coco_dt = coco_gt.loadRes(preds)
            ev = COCOeval_faster(coco_gt, coco_dt, iouType=iou_type, print_function=lambda *a, **k: None)
        else:
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(preds)
            ev = COCOeval(coco_gt, coco_dt, iouType=iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [round(max(float(s), 0.0), DECIMALS) for s in ev.stats[:6]]


def _copy(obj: Any) -> Any:
    """A deep copy of JSON-like data (pickle round trip: several times faster than copy.deepcopy)."""
    return pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise BadInput(f"{what} file not found: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadInput(f"{path}: not valid JSON ({err})") from None


def _check_predictions(preds: Any, gt: dict) -> None:
    """Each prediction needs the required keys, a known image id and category id, and an RLE mask of its image."""
    if not isinstance(preds, list):
        raise BadInput("predictions must be a JSON list of COCO results")
    sizes = {img["id"]: [img["height"], img["width"]] for img in gt["images"]}
    cat_ids = {c["id"] for c in gt["categories"]}
    compressed: list[tuple[str, str, int]] = []
    for i, p in enumerate(preds):
        if not isinstance(p, dict) or any(k not in p for k in _REQUIRED):
            raise BadInput(f"prediction {i} must be an object with {', '.join(_REQUIRED)}")
        if p["image_id"] not in sizes:
            raise BadInput(f"prediction {i} has unknown image id {p['image_id']}")
        if p["category_id"] not in cat_ids:
            raise BadInput(f"prediction {i} has unknown category id {p['category_id']}")
        seg = p["segmentation"]
        if not isinstance(seg, dict) or not isinstance(seg.get("counts"), str) or "size" not in seg:
            raise BadInput(f"prediction {i}: segmentation must be compressed RLE with size and str counts")
        h, w = sizes[p["image_id"]]
        if list(seg["size"]) != [h, w]:
            raise BadInput(f"prediction {i}: mask size {seg['size']} differs from image {p['image_id']}")
        compressed.append((f"prediction {i}", seg["counts"], h * w))
        if not isinstance(p["score"], numbers.Real):  # numpy scalars included
            raise BadInput(f"prediction {i}: score must be a number")
    check_compressed_rles(compressed, "predictions")
