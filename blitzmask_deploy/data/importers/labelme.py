"""labelme folders: one JSON per image (`shapes`, `imagePath`, `imageHeight`, `imageWidth`, optional `imageData`).

Polygon, rectangle, circle and mask shapes become instance masks; shapes that share a `group_id` and a label are
one instance (their masks unioned), shapes whose `group_id` is null one instance each. Points, lines and line
strips have no area and are skipped (counted per type). Categories are the labels in name order, ids from 1.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.jsonio import read_json
from blitzmask_deploy.data.importers.source import Item, Source, polygon_mask, stack_masks

AREA_SHAPES = ("polygon", "rectangle", "circle", "mask")
_CIRCLE_VERTICES = 64


class _Doc(NamedTuple):
    """What the import uses of one labelme file (its imageData is read again only when needed)."""

    path: Path
    shapes: list[dict]
    image_path: str
    size: tuple[Any, Any]  # (imageHeight, imageWidth) as written, None when absent
    has_data: bool


def read_labelme(src: Path) -> Source:
    """Every `*.json` under SRC (recursively) as a labelme annotation."""
    files = sorted(p for p in Path(src).rglob("*.json") if p.is_file())
    if not files:
        raise BadInput(f"no labelme .json files found under {src}")
    docs = [_load(p) for p in files]
    labels = sorted({s["label"] for doc in docs for s in doc.shapes})
    ids = {label: i for i, label in enumerate(labels, start=1)}
    source = Source(categories={i: label for label, i in ids.items()}, items=[])
    source.items.extend(_item(doc, ids, source) for doc in docs)
    return source


def _load(path: Path) -> _Doc:
    """A labelme file, checked for the keys and values the import uses."""
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise BadInput(f"{path}: not a labelme file (no 'shapes' list)")
    for key in ("imagePath", "imageData"):
        if not isinstance(doc.get(key), str | None):
            raise BadInput(f"{path}: {key} must be a string or null, got {doc[key]!r:.40}")
    for key in ("imageHeight", "imageWidth"):
        if not (doc.get(key) is None or (_is_int(doc[key]) and doc[key] >= 1)):
            raise BadInput(f"{path}: {key} must be a positive integer or null, got {doc[key]!r:.40}")
    if not doc.get("imagePath") and not doc.get("imageData"):
        raise BadInput(f"{path}: has neither imagePath nor imageData")
    for i, shape in enumerate(doc["shapes"]):
        if not isinstance(shape, dict) or not isinstance(shape.get("label"), str) or not shape["label"]:
            raise BadInput(f"{path}: shapes[{i}] has no label")
        points = shape.get("points")
        if not isinstance(points, list) or not all(_is_point(p) for p in points):
            raise BadInput(f"{path}: shapes[{i}] ({shape['label']}) points must be a list of [x, y] finite numbers")
        if not (shape.get("group_id") is None or _is_int(shape["group_id"])):
            raise BadInput(f"{path}: shapes[{i}] ({shape['label']}) group_id must be an integer or null")
        if not isinstance(shape.get("shape_type"), str | None):
            raise BadInput(f"{path}: shapes[{i}] ({shape['label']}) shape_type must be a string or null")
    image_path = str(doc.get("imagePath") or "").replace("\\", "/")
    size = (doc.get("imageHeight"), doc.get("imageWidth"))
    return _Doc(path, doc["shapes"], image_path, size, bool(doc.get("imageData")))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_point(p: Any) -> bool:
    numbers = isinstance(p, list) and all(_is_int(v) or isinstance(v, float) for v in p)
    return numbers and len(p) == 2 and all(math.isfinite(v) for v in p)


def _item(doc: _Doc, ids: dict[str, int], source: Source) -> Item:
    """The item of one labelme file: its image file (or the embedded data when the file is absent)."""
    path = doc.path
    image_file = path.parent / doc.image_path if doc.image_path else None
    name = PurePosixPath(doc.image_path).name if doc.image_path else path.stem
    if image_file is not None and image_file.is_file():
        image: Path | Callable[[], bytes] = image_file
    elif doc.has_data:
        image = partial(_image_data, path)
        if not doc.image_path:
            name += _data_suffix(path)
    else:
        raise BadInput(f"{path}: image file not found: {image_file}")

    def instances(height: int, width: int) -> tuple[np.ndarray, list[int]]:
        if None not in doc.size and doc.size != (height, width):
            raise BadInput(
                f"{path}: imageWidth x imageHeight is {doc.size[1]}x{doc.size[0]} but the image"
                f" (EXIF orientation applied) is {width}x{height}"
            )
        return _instances(path, doc.shapes, ids, height, width, source)

    return Item(file_name=name, split=None, image=image, instances=instances)


def _instances(
    path: Path, shapes: list[dict], ids: dict[str, int], height: int, width: int, source: Source
) -> tuple[np.ndarray, list[int]]:
    """Masks and category ids: one per group (label, group_id), one per shape without a group_id."""
    groups: dict[tuple, np.ndarray] = {}  # (label, "group", group_id) or (label, "shape", index) -> mask
    for i, shape in enumerate(shapes):
        kind = shape.get("shape_type") or "polygon"
        if kind not in AREA_SHAPES:
            source.skipped[f"labelme '{kind}' shapes (only {', '.join(AREA_SHAPES)} shapes have an area)"] += 1
            continue
        mask = _shape_mask(path, i, shape, kind, height, width)
        if mask is None:
            source.skipped["labelme shapes with too few points"] += 1
            continue
        group = shape.get("group_id")
        key = (shape["label"], "group", group) if group is not None else (shape["label"], "shape", i)
        groups[key] = groups[key] | mask if key in groups else mask
    return stack_masks(list(groups.values()), height, width), [ids[label] for label, *_ in groups]


def _shape_mask(path: Path, index: int, shape: dict, kind: str, height: int, width: int) -> np.ndarray | None:
    """The bool (H,W) mask of one area shape, or None when it has too few points."""
    pts = np.asarray(shape["points"], dtype=np.float64).reshape(-1, 2)
    if kind == "polygon":
        return polygon_mask([pts.ravel()], height, width) if len(pts) >= 3 else None
    if kind == "rectangle":
        if len(pts) < 2:
            return None
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        return polygon_mask([[x0, y0, x1, y0, x1, y1, x0, y1]], height, width)
    if kind == "circle":
        if len(pts) < 2:
            return None
        radius = math.dist(pts[0], pts[1])
        t = np.linspace(0, 2 * np.pi, _CIRCLE_VERTICES, endpoint=False)
        circle = np.stack([pts[0][0] + radius * np.cos(t), pts[0][1] + radius * np.sin(t)], axis=1)
        return polygon_mask([circle.ravel()], height, width)
    return _mask_shape(path, index, shape, pts, height, width)


def _mask_shape(path: Path, index: int, shape: dict, pts: np.ndarray, height: int, width: int) -> np.ndarray | None:
    """A labelme 'mask' shape: a base64 PNG of the box whose top-left corner is the first point."""
    if len(pts) < 1:
        return None
    try:
        with Image.open(io.BytesIO(base64.b64decode(shape.get("mask") or "", validate=True))) as img:
            local = np.asarray(img.convert("L")) > 0
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError):
        raise BadInput(f"{path}: shapes[{index}] ({shape['label']}) has no readable 'mask' PNG") from None
    mask = np.zeros((height, width), bool)
    x0, y0 = int(pts[0][0]), int(pts[0][1])
    h, w = min(local.shape[0], height - y0), min(local.shape[1], width - x0)
    if x0 >= 0 and y0 >= 0 and h > 0 and w > 0:
        mask[y0 : y0 + h, x0 : x0 + w] = local[:h, :w]
    return mask


def _image_data(path: Path) -> bytes:
    """The encoded image embedded in a labelme file (its `imageData`)."""
    try:
        return base64.b64decode(json.loads(path.read_text())["imageData"], validate=True)
    except (binascii.Error, ValueError) as err:
        raise BadInput(f"{path}: imageData is not valid base64 ({err})") from None


def _data_suffix(path: Path) -> str:
    """The file suffix of the embedded image's format (.png, .jpg, ...)."""
    try:
        with Image.open(io.BytesIO(_image_data(path))) as img:
            fmt = img.format or "png"
    except (UnidentifiedImageError, OSError) as err:
        raise BadInput(f"{path}: imageData is not a readable image ({err})") from None
    return {"JPEG": ".jpg"}.get(fmt, f".{fmt.lower()}")
