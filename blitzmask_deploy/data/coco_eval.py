"""COCO mask AP (and box AP) with faster-coco-eval, or pycocotools for cross-checks.

`evaluate(gt, predictions)` takes a COCO ground-truth JSON (path or dict) and COCO results (path or list of
dicts with `image_id`, `category_id`, `score`, RLE `segmentation`, optional `bbox` xywh) and returns the seven
summary figures exactly as COCO defines them: fractions in [0, 1], and -1 for an area range without ground truth.
Both backends run the same COCO protocol (10 IoU thresholds, 100 detections per image, small/medium/large area
ranges).

Any valid COCO file is scored exactly. pycocotools and faster-coco-eval record "unmatched" as id 0 in their
matching tables, so an annotation whose id is 0 would count as a miss; both are therefore given a renumbered copy:
images, categories and annotations numbered from 1 in the order of their original ids (images and categories) or
their order in the file (annotations). Orders are kept, so ties break as on the original ids and every figure is
COCO's. A ground-truth annotation without `area` gets its mask's area, without `bbox` its mask's box (COCO's
definitions); without `iscrowd`, 0.

Figures are rounded to 12 decimals: faster-coco-eval accumulates precision in C++ and pycocotools in numpy, and
their precision tables differ by up to one float ulp (~1e-16); rounded, the two backends agree exactly. The
caller's objects are never modified.
"""

from __future__ import annotations

import contextlib
import io
import pickle
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.jsonio import read_json
from blitzmask_deploy.core.masks import check_compressed_rles, segmentation_to_rle
from blitzmask_deploy.data.coco_check import bbox_problem, check_coco, is_finite, is_int, rle_size_problem

METRIC_KEYS = ("mask_ap", "mask_ap50", "mask_ap75", "mask_ap_small", "mask_ap_medium", "mask_ap_large", "box_ap")
BACKENDS = ("faster", "pycocotools")
_REQUIRED = ("image_id", "category_id", "score", "segmentation")
DECIMALS = 12


def evaluate(gt: Path | dict, predictions: Path | list[dict], *, backend: str = "faster") -> dict[str, Any]:
    """COCO metrics of `predictions` against `gt`: mask AP @[.5:.95], @.5, @.75, small/medium/large; box AP.

    `box_ap` is None when the predictions carry no `bbox`. No predictions score 0.0 where there is ground truth
    (-1 where there is none), as COCO scores them. As in COCO's loadRes, a detection's area (for the
    small/medium/large ranges) is its box area when boxes are given. Unknown image ids or category ids, missing
    keys, corrupt RLE and unreadable files are BadInput.
    """
    if backend not in BACKENDS:
        raise BadInput(f"unknown evaluation backend {backend!r} (choose from {', '.join(BACKENDS)})")
    gt_dict = gt if isinstance(gt, dict) else _read_json(Path(gt), "ground truth")
    preds = predictions if isinstance(predictions, list) else _read_json(Path(predictions), "predictions")
    check_coco(gt_dict, Path(gt) if not isinstance(gt, dict) else Path("<ground truth>"))
    _check_predictions(preds, gt_dict, "<predictions>" if isinstance(predictions, list) else str(predictions))
    gt_dict, preds = _renumbered(gt_dict, preds)
    if not preds:
        return _without_detections(gt_dict)
    has_box = all("bbox" in p for p in preds)
    if not has_box:  # a partial set of boxes would change how the libraries compute detection areas
        preds = [{k: v for k, v in p.items() if k != "bbox"} for p in preds]
    stats = _run(gt_dict, preds, "segm", backend)
    result = dict(zip(METRIC_KEYS[:6], stats[:6], strict=True))
    result["box_ap"] = _run(gt_dict, preds, "bbox", backend)[0] if has_box else None
    return result


def _renumbered(gt: dict, preds: list[dict]) -> tuple[dict, list[dict]]:
    """Copies of `gt` and `preds` with ids from 1 (see the module docstring); GT areas, boxes and crowd flags filled
    in."""
    image_ids = {old: new for new, old in enumerate(sorted(img["id"] for img in gt["images"]), start=1)}
    cat_ids = {old: new for new, old in enumerate(sorted(cat["id"] for cat in gt["categories"]), start=1)}
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    annotations = []
    for new_id, ann in enumerate(gt["annotations"], start=1):
        ids = {"id": new_id, "image_id": image_ids[ann["image_id"]], "category_id": cat_ids[ann["category_id"]]}
        annotations.append({"iscrowd": 0, **ann, **ids, **_geometry(ann, *sizes[ann["image_id"]])})
    renumbered = {
        **gt,
        "images": [{**img, "id": image_ids[img["id"]]} for img in gt["images"]],
        "categories": [{**cat, "id": cat_ids[cat["id"]]} for cat in gt["categories"]],
        "annotations": annotations,
    }
    moved = [{**p, "image_id": image_ids[p["image_id"]], "category_id": cat_ids[p["category_id"]]} for p in preds]
    return renumbered, moved


def _geometry(ann: dict, h: int, w: int) -> dict[str, Any]:
    """The annotation's `area` and `bbox`, from its mask where the file leaves them out."""
    if ann.get("area") is not None and "bbox" in ann:
        return {"area": ann["area"], "bbox": ann["bbox"]}
    rle = segmentation_to_rle(ann["segmentation"], h, w)
    area = ann["area"] if ann.get("area") is not None else float(mask_utils.area(rle))
    return {"area": area, "bbox": ann["bbox"] if "bbox" in ann else mask_utils.toBbox(rle).tolist()}


def _without_detections(gt: dict) -> dict[str, Any]:
    """COCO's figures for an empty result list (which neither library accepts): 0.0 for each area range that holds
    a non-crowd ground-truth instance, -1 for one that holds none."""
    ranges = {"": (0, 1e10), "_small": (0, 32**2), "_medium": (32**2, 96**2), "_large": (96**2, 1e10)}
    areas = [a["area"] for a in gt["annotations"] if not a["iscrowd"]]
    figure = {k: 0.0 if any(lo <= area <= hi for area in areas) else -1.0 for k, (lo, hi) in ranges.items()}
    return {
        "mask_ap": figure[""],
        "mask_ap50": figure[""],
        "mask_ap75": figure[""],
        **{f"mask_ap{k}": figure[k] for k in ("_small", "_medium", "_large")},
        "box_ap": None,
    }


def _run(gt: dict, preds: list[dict], iou_type: str, backend: str) -> list[float]:
    """Run one COCO evaluation quietly; the first six summary stats (-1: no ground truth in that range), rounded."""
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
    return [round(float(s), DECIMALS) for s in ev.stats[:6]]


def _copy(obj: Any) -> Any:
    """A deep copy of JSON-like data (pickle round trip: several times faster than copy.deepcopy)."""
    return pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise BadInput(f"{what} file not found: {path}")
    return read_json(path)


def _check_predictions(preds: Any, gt: dict, path: str) -> None:
    """BadInput (`PATH: predictions[i]: FIELD ...`) unless each prediction is an object with an integer image id and
    category id of the ground truth, a finite score, a compressed RLE mask of its image and, optionally, a bbox of
    4 finite numbers."""
    if not isinstance(preds, list):
        raise BadInput(f"{path}: predictions must be a JSON list of COCO results")
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    cat_ids = {c["id"] for c in gt["categories"]}
    compressed: list[tuple[str, str, int]] = []
    for i, p in enumerate(preds):
        where = f"predictions[{i}]"
        if not isinstance(p, dict) or any(k not in p for k in _REQUIRED):
            raise BadInput(f"{path}: {where} must be an object with {', '.join(_REQUIRED)}")
        problem = _prediction_problem(p, sizes, cat_ids)
        if problem:
            raise BadInput(f"{path}: {where}: {problem}")
        h, w = sizes[p["image_id"]]
        compressed.append((where, p["segmentation"]["counts"], h * w))
    check_compressed_rles(compressed, path)


def _prediction_problem(p: dict, sizes: dict[int, tuple[int, int]], cat_ids: set[int]) -> str | None:
    """Why one prediction cannot be scored (ids, score, mask, bbox), or None."""
    for key, known, what in (("image_id", sizes, "image"), ("category_id", cat_ids, "category")):
        if not is_int(p[key]):
            return f"{key} must be an integer, got {p[key]!r:.40}"
        if p[key] not in known:
            return f"{key} refers to unknown {what} id {p[key]}"
    if "caption" in p:  # both libraries would score every result as a caption
        return "caption makes it a captioning result, not an instance mask"
    if not is_finite(p["score"]):
        return f"score must be a finite number, got {p['score']!r:.40}"
    seg = p["segmentation"]
    if not isinstance(seg, dict) or not isinstance(seg.get("counts"), str) or "size" not in seg:
        return "segmentation must be compressed RLE with size and str counts"
    return rle_size_problem(seg["size"], *sizes[p["image_id"]]) or (bbox_problem(p["bbox"]) if "bbox" in p else None)
