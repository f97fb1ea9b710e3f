"""`evaluate` gives COCO's exact figures on every valid COCO file: ids from 0, gapped and unordered category ids,
crowd regions, polygons (multi-part), uncompressed and compressed RLE, images without annotations, missing areas,
area ranges without ground truth (-1). The reference is pycocotools itself, run on a copy whose ids are shifted to
start at 1 (the libraries' matching tables use id 0 for "unmatched")."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from blitzmask_deploy.core.masks import masks_to_rle
from blitzmask_deploy.data.coco_eval import BACKENDS, METRIC_KEYS, evaluate
from tests.support.perturb import perturb_predictions

SIZE = 160


def _shapes(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """`count` random convex polygons (N,2) inside a SIZE square, of very different sizes."""
    shapes = []
    for _ in range(count):
        radius = rng.choice([6.0, 14.0, 30.0, 60.0]) * rng.uniform(0.8, 1.2)
        cx, cy = rng.uniform(radius, SIZE - radius, 2)
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 8))))
        shapes.append(np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1))
    return shapes


def _polygon(points: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in points.reshape(-1)]


def _make_gt(
    *,
    seed: int,
    first_id: int = 1,
    category_ids: tuple[int, ...] = (1, 2, 3),
    encoding: str = "polygon",
    crowd: bool = False,
    empty_images: int = 0,
    with_area: bool = True,
    max_radius: float | None = None,
) -> dict:
    """A COCO ground truth of 8 images (plus `empty_images` without annotations) in the given encoding."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    ann_id = first_id
    for k in range(8 + empty_images):
        image_id = first_id + 3 * k  # gapped image ids
        images.append({"id": image_id, "file_name": f"{k}.png", "height": SIZE, "width": SIZE})
        if k >= 8:
            continue
        for n, points in enumerate(_shapes(rng, 6)):
            if max_radius is not None:
                centre = points.mean(axis=0)
                points = centre + (points - centre) * min(1.0, max_radius / np.abs(points - centre).max())
            parts = [points]
            if encoding == "multipolygon":
                parts.append(points[:3] * 0.4 + rng.uniform(0, SIZE * 0.6, 2))
            polygons = [_polygon(p) for p in parts]
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, SIZE, SIZE))
            iscrowd = int(crowd and n == 0)
            if encoding in ("polygon", "multipolygon") and not iscrowd:
                segmentation = polygons
            elif encoding == "compressed":
                segmentation = masks_to_rle(mask_utils.decode(rle).astype(bool)[None])[0]
            else:  # uncompressed RLE (what COCO uses for crowd regions)
                mask = mask_utils.decode(rle).astype(bool)
                flat = mask.reshape(-1, order="F")
                change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
                runs = np.diff(np.concatenate([[0], change, [flat.size]]))
                counts = ([0] if flat[0] else []) + runs.tolist()
                segmentation = {"counts": counts, "size": [SIZE, SIZE]}
            ann = {
                "id": ann_id,
                "image_id": image_id,
                "category_id": int(rng.choice(category_ids)),
                "segmentation": segmentation,
                "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                "iscrowd": iscrowd,
            }
            if with_area:
                ann["area"] = float(mask_utils.area(rle))
            annotations.append(ann)
            ann_id += 1
    categories = [{"id": c, "name": f"class {c}"} for c in category_ids]
    return {"images": images, "annotations": annotations, "categories": categories}


def _reference(gt: dict, preds: list[dict], iou_type: str) -> list[float]:
    """pycocotools' six summary figures on a copy of `gt`/`preds` with every id shifted to start at 1."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    shift = 1 - min(
        [i["id"] for i in gt["images"]] + [a["id"] for a in gt["annotations"]] + [c["id"] for c in gt["categories"]]
    )
    gt, preds = copy.deepcopy(gt), copy.deepcopy(preds)
    for record in (*gt["images"], *gt["annotations"], *gt["categories"]):
        record["id"] += shift
    for record in (*gt["annotations"], *preds):
        record["image_id"] += shift
        record["category_id"] += shift
    for ann in gt["annotations"]:
        if "area" not in ann:  # COCO's definition of an instance's area
            ann["area"] = float(mask_utils.area(_rle(ann["segmentation"])))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(preds), iouType=iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(s) for s in ev.stats[:6]]


def _rle(segmentation: object) -> dict:
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, SIZE, SIZE))
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, SIZE, SIZE)
    return segmentation


def _assert_exact(gt: dict, preds: list[dict]) -> dict:
    """Both backends equal the reference within 1e-9 on every figure (mask and box); returns the faster result."""
    expected = dict(zip(METRIC_KEYS[:6], _reference(gt, preds, "segm"), strict=True))
    expected["box_ap"] = _reference(gt, preds, "bbox")[0]
    for backend in BACKENDS:
        got = evaluate(gt, preds, backend=backend)
        for key in METRIC_KEYS:
            assert got[key] == pytest.approx(expected[key], abs=1e-9), (backend, key)
    return evaluate(gt, preds)


CASES = {
    "ids from 0": {"first_id": 0, "category_ids": (0, 1, 2)},
    "gapped unordered category ids": {"category_ids": (90, 1, 44)},
    "crowd regions": {"crowd": True},
    "multi-part polygons": {"encoding": "multipolygon"},
    "uncompressed RLE": {"encoding": "uncompressed"},
    "compressed RLE": {"encoding": "compressed", "first_id": 0},
    "images without annotations": {"empty_images": 3, "first_id": 0},
    "no area field": {"with_area": False, "first_id": 0},
    "no large instances": {"max_radius": 20.0, "first_id": 0},
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_figure_is_cocos(case: str) -> None:
    gt = _make_gt(seed=len(case), **CASES[case])
    preds = perturb_predictions(gt, np.random.default_rng(7))
    before = copy.deepcopy((gt, preds))
    result = _assert_exact(gt, preds)
    assert (gt, preds) == before  # the caller's objects are untouched
    assert 0.0 < result["mask_ap"] < 1.0


def test_ids_from_zero_perfect_predictions_score_one() -> None:
    gt = _make_gt(seed=1, first_id=0, category_ids=(0, 7))
    preds = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": _rle(a["segmentation"]),
         "bbox": a["bbox"], "score": 1.0}
        for a in gt["annotations"] if not a["iscrowd"]
    ]  # fmt: skip
    for pred in preds:
        pred["segmentation"] = {**pred["segmentation"], "counts": pred["segmentation"]["counts"].decode()}
    result = evaluate(gt, preds)
    assert all(result[key] == 1.0 for key in ("mask_ap", "mask_ap50", "mask_ap75", "box_ap"))


def test_a_range_without_ground_truth_is_minus_one() -> None:
    gt = _make_gt(seed=2, max_radius=20.0)
    assert all(a["area"] <= 96**2 for a in gt["annotations"])
    result = _assert_exact(gt, perturb_predictions(gt, np.random.default_rng(3)))
    assert result["mask_ap_large"] == -1.0 and result["mask_ap_small"] >= 0.0


def test_no_predictions_score_as_coco_scores_them() -> None:
    gt = _make_gt(seed=4, max_radius=20.0, first_id=0)
    result = evaluate(gt, [])
    assert result["mask_ap"] == result["mask_ap_small"] == 0.0
    assert result["mask_ap_large"] == -1.0 and result["box_ap"] is None
