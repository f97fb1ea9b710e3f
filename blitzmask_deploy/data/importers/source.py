"""What an importer hands the writer: one `Item` per image, and the shape rasteriser the polygon formats share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from blitzmask_deploy.core.masks import segmentation_to_rle

# (image height, image width) -> (bool masks (N,H,W), category ids (N,))
InstancesFn = Callable[[int, int], tuple[np.ndarray, list[int]]]


@dataclass(frozen=True)
class Item:
    """One image of a source: its name in the dataset, the split the source gives it (None: --val-fraction
    decides), the image (a file to copy, or a function returning the encoded bytes) and its instances."""

    file_name: str
    split: str | None
    image: Path | Callable[[], bytes]
    instances: InstancesFn


@dataclass
class Source:
    """A dataset read from another tool's format: category names by id, the images, and counters of what was
    skipped (filled while the items' instances are made)."""

    categories: dict[int, str]
    items: list[Item]
    skipped: Counter[str] = field(default_factory=Counter)


def polygon_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Bool (H,W) union of flat [x1, y1, x2, y2, ...] polygons in pixel coordinates (COCO's rasterisation)."""
    rle = segmentation_to_rle([[float(v) for v in p] for p in polygons], height, width)
    return mask_utils.decode(rle).astype(bool)


def stack_masks(masks: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """(N,H,W) bool array of a list of (H,W) masks (N may be 0)."""
    return np.stack(masks) if masks else np.zeros((0, height, width), bool)
