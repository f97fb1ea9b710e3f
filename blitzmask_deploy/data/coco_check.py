"""COCO instance files checked up front: structure, types, ids, sizes, geometry and RLE consistency, one BadInput
line each.

Everything that could make training or evaluation fail later (missing keys, wrong types, NaN or infinite numbers,
unknown image or category ids, geometry outside the image) is found when the file is opened and reported naming
the file, the record and the field: `PATH: annotations[i] (id N): FIELD ...`. The checks also bound what
pycocotools' C code is handed: image sides, pixel counts and polygon outlines whose rasterisation would need huge
buffers are refused, so memory and time stay proportional to the file's size.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.jsonio import read_json
from blitzmask_deploy.core.masks import check_compressed_rles

_EDGE_TOLERANCE = 1.0  # pixels: COCO files often store coordinates a rounding error past the border
MAX_SIDE = 100_000  # pixels: a larger image height or width is a typo, not an image
MAX_PIXELS = 2**31 - 1  # pycocotools counts a mask's pixels in 32-bit integers
MAX_POLYGON_POINTS = 100_000  # per annotation, over all its polygons
MAX_OUTLINE = 1_000_000  # pixels of outline per annotation: pycocotools rasterises it 5× oversampled, in int arrays


def load_coco_json(path: Path) -> dict:
    """Parse a COCO JSON file; a missing or unparsable file is BadInput."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"annotation file not found: {path}")
    data = read_json(path)
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a JSON object with images, annotations, categories")
    return data


def check_coco(coco: Any, path: Path) -> None:
    """Raise BadInput (naming `path`) for the first structural, type or geometric problem in a COCO instance dict."""
    if not isinstance(coco, dict):
        raise BadInput(f"{path}: expected a JSON object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise BadInput(f"{path}: missing or non-list key {key!r}")
    cat_ids = _check_categories(coco["categories"], path)
    sizes = _check_images(coco["images"], path)
    compressed: list[tuple[str, str | bytes, int]] = []  # (where, counts, pixels): checked together below
    ann_ids: set[int] = set()
    for i, ann in enumerate(coco["annotations"]):
        where = _where("annotations", i, ann)
        _require(ann, ("image_id", "category_id", "segmentation"), where, path)
        with _naming(path, where):
            _check_annotation(ann, ann_ids, sizes, cat_ids)
        if isinstance(ann["segmentation"], dict) and isinstance(ann["segmentation"]["counts"], str | bytes):
            compressed.append((where, ann["segmentation"]["counts"], math.prod(sizes[ann["image_id"]])))
    check_compressed_rles(compressed, path)


class _Problem(Exception):
    """What is wrong with one field of a record (`_naming` adds the file and the record)."""


@contextlib.contextmanager
def _naming(path: Path, where: str) -> Iterator[None]:
    """Turn a _Problem raised in the block into BadInput `PATH: WHERE: PROBLEM`."""
    try:
        yield
    except _Problem as problem:
        raise BadInput(f"{path}: {where}: {problem}") from None


def _where(kind: str, i: int, record: Any) -> str:
    """`annotations[3] (id 17)`, or `annotations[3]` when the record has no usable id."""
    ident = record.get("id") if isinstance(record, dict) else None
    return f"{kind}[{i}] (id {ident})" if is_int(ident) else f"{kind}[{i}]"


def _require(obj: Any, keys: tuple[str, ...], where: str, path: Path) -> None:
    if not isinstance(obj, dict):
        raise BadInput(f"{path}: {where} is not an object")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise BadInput(f"{path}: {where} is missing {', '.join(missing)}")


def _check_categories(categories: list, path: Path) -> set[int]:
    """The category ids; each category an object with a unique integer id and a string name."""
    ids: set[int] = set()
    for i, cat in enumerate(categories):
        where = _where("categories", i, cat)
        _require(cat, ("id", "name"), where, path)
        with _naming(path, where):
            _check_id(cat["id"], ids, "category")
            if not isinstance(cat["name"], str):
                raise _Problem(f"name must be a string, got {cat['name']!r:.40}")
        ids.add(cat["id"])
    return ids


def _check_images(images: list, path: Path) -> dict[int, tuple[int, int]]:
    """(height, width) per image id; each image a unique integer id, a file name and a sane size."""
    sizes: dict[int, tuple[int, int]] = {}
    for i, img in enumerate(images):
        where = _where("images", i, img)
        _require(img, ("id", "file_name", "height", "width"), where, path)
        with _naming(path, where):
            _check_id(img["id"], sizes, "image")
            if not isinstance(img["file_name"], str) or not img["file_name"]:
                raise _Problem(f"file_name must be a non-empty string, got {img['file_name']!r:.40}")
            problem = image_size_problem(img["height"], img["width"])
            if problem:
                raise _Problem(problem)
        sizes[img["id"]] = (img["height"], img["width"])
    return sizes


def _check_annotation(ann: dict, ids: set[int], sizes: dict[int, tuple[int, int]], cat_ids: set[int]) -> None:
    """_Problem for the first bad field of one annotation; its id is added to `ids`."""
    if "id" in ann:
        _check_id(ann["id"], ids, "annotation")
        ids.add(ann["id"])
    problem = annotation_problem(ann, sizes, cat_ids)
    if problem:
        raise _Problem(problem)


def image_size_problem(height: Any, width: Any) -> str | None:
    """Why an image record's height and width are not a usable size, or None."""
    for key, value in (("height", height), ("width", width)):
        if not is_int(value) or not 1 <= value <= MAX_SIDE:
            return f"{key} must be an integer from 1 to {MAX_SIDE}, got {value!r:.40}"
    if height * width > MAX_PIXELS:
        return f"size {width}x{height} has more than {MAX_PIXELS} pixels"
    return None


def annotation_problem(ann: dict, sizes: dict[int, tuple[int, int]], cat_ids: Collection[int]) -> str | None:
    """Why one annotation (an object with image_id, category_id and segmentation) cannot be used, or None: its
    references (to images of `sizes`, (h, w) by id, and to `cat_ids`), iscrowd, area, segmentation and bbox."""
    for key, known, what in (("image_id", sizes, "image"), ("category_id", cat_ids, "category")):
        if not is_int(ann[key]):
            return f"{key} must be an integer, got {ann[key]!r:.40}"
        if ann[key] not in known:
            return f"{key} refers to unknown {what} id {ann[key]}"
    if "iscrowd" in ann and not (is_int(ann["iscrowd"]) and ann["iscrowd"] in (0, 1)):
        return f"iscrowd must be 0 or 1, got {ann['iscrowd']!r:.40}"
    if ann.get("area") is not None and not (is_finite(ann["area"]) and ann["area"] >= 0):
        return f"area must be a finite number >= 0, got {ann['area']!r:.40}"
    h, w = sizes[ann["image_id"]]
    return segmentation_problem(ann["segmentation"], h, w) or (
        bbox_problem(ann["bbox"], h, w) if "bbox" in ann else None
    )


def _check_id(value: Any, seen: Collection[int], what: str) -> None:
    """An id must be an integer (0 and negative ones are valid) that no earlier record of its kind has."""
    if not is_int(value):
        raise _Problem(f"id must be an integer, got {value!r:.40}")
    if value in seen:
        raise _Problem(f"duplicate {what} id {value}")


def is_int(value: Any) -> bool:
    """An integer (numpy's included), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def is_finite(value: Any) -> bool:
    """A real number (numpy's included, bools not) that is finite as a float."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool | np.bool_):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def segmentation_problem(seg: Any, h: int, w: int) -> str | None:
    """Why a segmentation cannot be used on an h×w image, or None."""
    if isinstance(seg, list):
        return _polygon_problem(seg, h, w)
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        return "segmentation must be a polygon list or an RLE object with size and counts"
    problem = rle_size_problem(seg["size"], h, w)
    if problem:
        return problem
    counts = seg["counts"]
    if isinstance(counts, list):
        if not all(is_int(c) and c >= 0 for c in counts) or sum(counts) != h * w:
            return f"segmentation uncompressed RLE counts must be non-negative ints summing to {h}*{w}"
        return None
    if not isinstance(counts, str | bytes):
        return f"segmentation RLE counts must be a list (uncompressed) or a string (compressed), got {counts!r:.40}"
    return None  # compressed strings are decoded all at once by check_compressed_rles


def rle_size_problem(size: Any, h: int, w: int) -> str | None:
    """Why an RLE `size` is not the [h, w] of its image, or None."""
    if not (isinstance(size, list | tuple) and len(size) == 2 and all(is_int(v) for v in size)):
        return f"segmentation RLE size must be a list of two integers [height, width], got {size!r:.40}"
    if list(size) != [h, w]:
        return f"segmentation mask size {list(size)} does not match the image size [{h}, {w}] (mask outside the image)"
    return None


def _polygon_problem(seg: list, h: int, w: int) -> str | None:
    """Why a list of polygons cannot be rasterised on an h×w image (types, finiteness, bounds, size), or None."""
    if not seg or not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg):
        return "segmentation polygons must be a list of [x1, y1, x2, y2, ...] lists with >= 3 points"
    points = sum(len(p) for p in seg) // 2
    if points > MAX_POLYGON_POINTS:
        return f"segmentation has {points} polygon points (at most {MAX_POLYGON_POINTS})"
    bad = [v for p in seg for v in p if not is_finite(v)]
    if bad:
        return f"segmentation polygon coordinates must be finite numbers, got {bad[0]!r:.40}"
    outline = 0.0
    for p in seg:
        xy = np.asarray(p, dtype=np.float64).reshape(-1, 2)
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        if lo.min() < -_EDGE_TOLERANCE or hi[0] > w + _EDGE_TOLERANCE or hi[1] > h + _EDGE_TOLERANCE:
            return f"segmentation polygon extends outside the {w}x{h} image"
        outline += float(np.abs(xy - np.roll(xy, -1, axis=0)).max(axis=1).sum())
    if outline > MAX_OUTLINE:
        return f"segmentation polygon outline is {outline:.0f} pixels long (at most {MAX_OUTLINE})"
    return None


def bbox_problem(bbox: Any, h: int | None = None, w: int | None = None) -> str | None:
    """Why an xywh bbox is not 4 finite numbers with a non-negative size (inside an h×w image when given), or None."""
    if not (isinstance(bbox, list | tuple) and len(bbox) == 4 and all(is_finite(v) for v in bbox)):
        return f"bbox must be 4 finite numbers [x, y, w, h], got {bbox!r:.40}"
    x, y, bw, bh = (float(v) for v in bbox)
    if bw < 0 or bh < 0:
        return f"bbox {list(bbox)} has negative size"
    if h is not None and w is not None:
        tol = _EDGE_TOLERANCE
        if x < -tol or y < -tol or x + bw > w + tol or y + bh > h + tol:
            return f"bbox {list(bbox)} extends outside the {w}x{h} image"
    return None
