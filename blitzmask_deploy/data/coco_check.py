"""COCO instance files checked up front: structure, ids, geometry and RLE consistency, one BadInput line each.

Everything that could make training or evaluation fail later (missing keys, unknown image or category ids,
geometry outside the image) is found when the file is opened and reported naming the file and the record.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.masks import check_compressed_rles

_EDGE_TOLERANCE = 1.0  # pixels: COCO files often store coordinates a rounding error past the border


def load_coco_json(path: Path) -> dict:
    """Parse a COCO JSON file; a missing or unparsable file is BadInput."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadInput(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a JSON object with images, annotations, categories")
    return data


def check_coco(coco: dict, path: Path) -> None:
    """Raise BadInput (naming `path`) for the first structural or geometric problem in a COCO instance dict."""
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise BadInput(f"{path}: missing or non-list key {key!r}")
    cat_ids = set()
    for i, cat in enumerate(coco["categories"]):
        _require(cat, ("id", "name"), f"categories[{i}]", path)
        _check_id(cat["id"], cat_ids, f"categories[{i}]", "category", path)
        cat_ids.add(cat["id"])
    sizes = {}
    for i, img in enumerate(coco["images"]):
        _require(img, ("id", "file_name", "height", "width"), f"images[{i}]", path)
        _check_id(img["id"], sizes, f"images[{i}]", "image", path)
        if (
            not (isinstance(img["height"], int) and isinstance(img["width"], int))
            or min(img["height"], img["width"]) < 1
        ):
            raise BadInput(f"{path}: images[{i}] has invalid size {img['width']}x{img['height']}")
        sizes[img["id"]] = (img["height"], img["width"])
    ann_ids: set[int] = set()
    compressed: list[tuple[str, str | bytes, int]] = []  # (where, counts, pixels): checked together below
    for i, ann in enumerate(coco["annotations"]):
        where = f"annotations[{i}] (id {ann.get('id')})" if isinstance(ann, dict) else f"annotations[{i}]"
        _require(ann, ("image_id", "category_id", "segmentation"), where, path)
        if "id" in ann:
            _check_id(ann["id"], ann_ids, where, "annotation", path)
            ann_ids.add(ann["id"])
        if ann["image_id"] not in sizes:
            raise BadInput(f"{path}: {where} refers to unknown image id {ann['image_id']}")
        if ann["category_id"] not in cat_ids:
            raise BadInput(f"{path}: {where} refers to unknown category id {ann['category_id']}")
        h, w = sizes[ann["image_id"]]
        problem = _segmentation_problem(ann["segmentation"], h, w) or _bbox_problem(ann.get("bbox"), h, w)
        if problem:
            raise BadInput(f"{path}: {where}: {problem}")
        if isinstance(ann["segmentation"], dict) and not isinstance(ann["segmentation"]["counts"], list):
            compressed.append((where, ann["segmentation"]["counts"], h * w))
    check_compressed_rles(compressed, path)


def _check_id(value: Any, seen: Collection[int], where: str, what: str, path: Path) -> None:
    """An id must be an integer (0 and negative ones are valid) that no earlier record of its kind has."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadInput(f"{path}: {where} has a non-integer {what} id {value!r}")
    if value in seen:
        raise BadInput(f"{path}: duplicate {what} id {value}")


def _require(obj: Any, keys: tuple[str, ...], where: str, path: Path) -> None:
    if not isinstance(obj, dict):
        raise BadInput(f"{path}: {where} is not an object")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise BadInput(f"{path}: {where} is missing {', '.join(missing)}")


def _segmentation_problem(seg: Any, h: int, w: int) -> str | None:
    """Why a segmentation cannot be used on an h×w image, or None."""
    if isinstance(seg, list):
        if not seg or not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg):
            return "polygon segmentation must be a list of [x1, y1, x2, y2, ...] lists with >= 3 points"
        try:
            pts = np.concatenate([np.asarray(p, dtype=np.float64) for p in seg]).reshape(-1, 2)
        except (TypeError, ValueError):
            return "polygon coordinates must be numbers"
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        if lo.min() < -_EDGE_TOLERANCE or hi[0] > w + _EDGE_TOLERANCE or hi[1] > h + _EDGE_TOLERANCE:
            return f"polygon extends outside the {w}x{h} image"
        return None
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        return "segmentation must be a polygon list or an RLE object with size and counts"
    if list(seg["size"]) != [h, w]:
        return f"RLE size {seg['size']} does not match the image size [{h}, {w}] (mask outside the image)"
    counts = seg["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != h * w:
            return f"uncompressed RLE counts must be non-negative ints summing to {h}*{w}"
        return None
    if not isinstance(counts, str | bytes):
        return "RLE counts must be a list (uncompressed) or a string (compressed)"
    return None  # compressed strings are decoded all at once by check_compressed_rles


def _bbox_problem(bbox: Any, h: int, w: int) -> str | None:
    """Why an xywh bbox does not fit an h×w image, or None (a missing bbox is fine)."""
    if bbox is None:
        return None
    try:
        x, y, bw, bh = (float(v) for v in bbox)
    except (TypeError, ValueError):
        return f"bbox must be 4 numbers [x, y, w, h], got {bbox!r}"
    if bw < 0 or bh < 0:
        return f"bbox {bbox} has negative size"
    if x < -_EDGE_TOLERANCE or y < -_EDGE_TOLERANCE or x + bw > w + _EDGE_TOLERANCE or y + bh > h + _EDGE_TOLERANCE:
        return f"bbox {bbox} extends outside the {w}x{h} image"
    return None
