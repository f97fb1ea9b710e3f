"""Pascal VOC segmentation trees: JPEGImages/, SegmentationObject/ and SegmentationClass/ PNGs, ImageSets/.

SegmentationObject holds instance indices (0 background, 255 boundary/void, ignored), SegmentationClass the VOC
class index of each pixel (1..20, 255 void). An instance's class is the most frequent class under its pixels.
Category ids are the VOC class indices, names the standard VOC names. ImageSets/Segmentation/{train,val}.txt,
when both exist, give the split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.data.images import IMAGE_SUFFIXES
from blitzmask_deploy.data.importers.source import Item, Source, stack_masks

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
VOID = 255


def read_voc(src: Path) -> Source:
    """The segmented images of the VOC tree at SRC (the folder holding JPEGImages/)."""
    src = Path(src)
    for sub in ("JPEGImages", "SegmentationObject", "SegmentationClass"):
        if not (src / sub).is_dir():
            raise BadInput(f"{src} is not a Pascal VOC tree: {sub}/ is missing")
    splits = _listed_splits(src)
    if splits is None:
        splits = {p.stem: None for p in sorted((src / "SegmentationObject").glob("*.png"))}
    if not splits:
        raise BadInput(f"{src / 'SegmentationObject'} holds no .png files")
    categories = {i: name for i, name in enumerate(VOC_CLASSES, start=1)}
    return Source(categories=categories, items=[_item(src, stem, split) for stem, split in splits.items()])


def _listed_splits(src: Path) -> dict[str, str | None] | None:
    """Image stems and their split from ImageSets/Segmentation/{train,val}.txt, or None when not both exist."""
    lists = {s: src / "ImageSets" / "Segmentation" / f"{s}.txt" for s in ("train", "val")}
    if not all(p.is_file() for p in lists.values()):
        return None
    splits: dict[str, str | None] = {}
    for split, path in lists.items():
        for stem in path.read_text().split():
            if splits.setdefault(stem, split) != split:
                raise BadInput(f"{path}: {stem} is listed in both train.txt and val.txt")
    return splits


def _item(src: Path, stem: str, split: str | None) -> Item:
    candidates = [src / "JPEGImages" / f"{stem}{s}" for suffix in IMAGE_SUFFIXES for s in (suffix, suffix.upper())]
    image = next((p for p in candidates if p.is_file()), None)
    if image is None:
        raise BadInput(f"{src / 'JPEGImages'}: no image for {stem}")
    objects, classes = src / "SegmentationObject" / f"{stem}.png", src / "SegmentationClass" / f"{stem}.png"

    def instances(height: int, width: int) -> tuple[np.ndarray, list[int]]:
        obj, cls = _index_png(objects, height, width), _index_png(classes, height, width)
        masks, ids = [], []
        for k in np.unique(obj):
            if k in (0, VOID):
                continue
            mask = obj == k
            votes = np.bincount(cls[mask & (cls != VOID) & (cls != 0)], minlength=VOID)
            if not votes.any():
                raise BadInput(f"{classes}: instance {k} of {objects.name} has no class pixels")
            cid = int(votes.argmax())
            if cid > len(VOC_CLASSES):
                raise BadInput(f"{classes}: {cid} is not a VOC class index (1..{len(VOC_CLASSES)} or 255)")
            masks.append(mask)
            ids.append(cid)
        return stack_masks(masks, height, width), ids

    return Item(file_name=image.name, split=split, image=image, instances=instances)


def _index_png(path: Path, height: int, width: int) -> np.ndarray:
    """The index values (H,W) uint8 of a palette or grayscale PNG of the image's size."""
    if not path.is_file():
        raise BadInput(f"label file not found: {path}")
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L"):
                raise BadInput(f"{path}: expected a palette or grayscale PNG of indices, got mode {img.mode}")
            values = np.asarray(img)
    except (UnidentifiedImageError, OSError) as err:
        raise BadInput(f"{path}: not a readable PNG ({err})") from None
    if values.shape != (height, width):
        raise BadInput(f"{path}: is {values.shape[1]}x{values.shape[0]} but its image is {width}x{height}")
    return values
