"""Instance-segmentation samples written as labelme folders, Pascal VOC trees and YOLO-seg trees (test sources
for `blitzmask data import`), and masks traced to exact pixel-edge polygons."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from scipy import ndimage
from skimage import measure

from blitzmask_deploy.core.masks import segmentation_to_rle
from blitzmask_deploy.data.coco import CocoDataset

VOID = 255


@dataclass
class Sample:
    """One image file with its instances: bool masks (N,H,W), category ids and pixel-coordinate polygons."""

    name: str
    image: Path
    split: str
    masks: np.ndarray
    category_ids: list[int]
    polygons: list[list[float]]


def trace_polygon(mask: np.ndarray) -> list[float] | None:
    """The flat [x1, y1, ...] polygon (pixel coordinates) whose COCO rasterisation is exactly `mask`, or None
    when the mask is not one piece without holes."""
    up = np.kron(np.pad(mask, 1), np.ones((2, 2), np.uint8)).astype(np.float32)
    contours = measure.find_contours(up, 0.5)  # along the pixel edges of the 2x grid: corners cut by 1/4 pixel
    if len(contours) != 1:
        return None
    rc = measure.approximate_polygon(contours[0], 0)
    polygon = np.stack([(rc[:, 1] + 0.5) / 2 - 1, (rc[:, 0] + 0.5) / 2 - 1], axis=1).ravel().tolist()
    return polygon if np.array_equal(polygon_to_mask(polygon, *mask.shape), mask) else None


def labelme_shapes_from_mask(label: str, mask: np.ndarray, group_id: int) -> tuple[list[dict], np.ndarray]:
    """labelme polygon shapes of a mask, one per 4-connected piece (holes filled; `group_id` on all of them when
    there are several), and the mask they describe exactly."""
    pieces, n = ndimage.label(mask)
    shapes, covered = [], np.zeros_like(mask, bool)
    for k in range(1, n + 1):
        piece = ndimage.binary_fill_holes(pieces == k)
        polygon = trace_polygon(piece)
        assert polygon is not None, "a filled 4-connected piece is one contour"
        shapes.append(labelme_shape(label, np.reshape(polygon, (-1, 2)).tolist(), group_id=group_id if n > 1 else None))
        covered |= piece
    return shapes, covered


def polygon_to_mask(polygon: list[float], height: int, width: int) -> np.ndarray:
    """COCO's rasterisation of one flat polygon."""
    from pycocotools import mask as mask_utils

    return mask_utils.decode(segmentation_to_rle([polygon], height, width)).astype(bool)


def samples_from_coco(root: Path) -> list[Sample]:
    """Both splits of a COCO dataset as samples named `<split>_<file_name>`, keeping only the instances that one
    traced polygon reproduces exactly (so that every format can hold them)."""
    samples = []
    for split in ("train", "val"):
        ds = CocoDataset.from_split(root, split)
        for i in range(len(ds)):
            gt = ds.ground_truth(i)
            polygons = [trace_polygon(m) for m in gt.masks]
            keep = [k for k, p in enumerate(polygons) if p is not None]
            samples.append(
                Sample(
                    name=f"{split}_{ds.image_path(i).name}",
                    image=ds.image_path(i),
                    split=split,
                    masks=gt.masks[keep],
                    category_ids=[ds.cat_index_to_id[gt.labels[k]] for k in keep],
                    polygons=[polygons[k] for k in keep],
                )
            )
    return samples


def write_labelme(samples: list[Sample], folder: Path, names: dict[int, str]) -> Path:
    """One labelme JSON per sample beside a copy of its image; one polygon shape per instance."""
    folder.mkdir(parents=True, exist_ok=True)
    for s in samples:
        shutil.copyfile(s.image, folder / s.name)
        w, h = Image.open(s.image).size
        shapes = [
            labelme_shape(names[c], np.reshape(p, (-1, 2)).tolist())
            for c, p in zip(s.category_ids, s.polygons, strict=True)
        ]
        write_labelme_file(folder / f"{Path(s.name).stem}.json", s.name, h, w, shapes)
    return folder


def labelme_shape(label: str, points: list, shape_type: str = "polygon", group_id: int | None = None) -> dict:
    """A labelme shape record."""
    return {"label": label, "points": points, "group_id": group_id, "shape_type": shape_type, "flags": {}}


def write_labelme_file(path: Path, image_path: str, height: int, width: int, shapes: list[dict], **extra) -> None:
    """A labelme JSON file as labelme 5 writes it."""
    doc = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_path, "imageData": None}
    path.write_text(json.dumps({**doc, "imageHeight": height, "imageWidth": width, **extra}, indent=2))


def write_voc(samples: list[Sample], folder: Path, *, boundary: bool = False) -> Path:
    """A VOC tree: JPEGImages/, palette SegmentationObject/ and SegmentationClass/ PNGs (class index = category id),
    ImageSets/Segmentation/{train,val}.txt from the samples' splits. `boundary`: a 1-pixel 255 ring around each
    instance, painted over its outermost pixels, as VOC draws them."""
    for sub in ("JPEGImages", "SegmentationObject", "SegmentationClass", "ImageSets/Segmentation"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for s in samples:
        shutil.copyfile(s.image, folder / "JPEGImages" / s.name)
        w, h = Image.open(s.image).size
        obj, cls = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
        for k, (m, c) in enumerate(zip(s.masks, s.category_ids, strict=True), start=1):
            obj[m], cls[m] = k, c
        if boundary:
            edge = np.zeros((h, w), bool)
            for m in s.masks:
                edge |= m & ~ndimage.binary_erosion(m)
            obj[edge], cls[edge] = VOID, VOID
        stem = Path(s.name).stem
        write_palette_png(obj, folder / "SegmentationObject" / f"{stem}.png")
        write_palette_png(cls, folder / "SegmentationClass" / f"{stem}.png")
    for split in ("train", "val"):
        stems = [Path(s.name).stem for s in samples if s.split == split]
        (folder / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{t}\n" for t in stems))
    return folder


def write_palette_png(values: np.ndarray, path: Path) -> None:
    """uint8 index values as a palette PNG (VOC's colour map is irrelevant to the indices)."""
    img = Image.fromarray(values, mode="P")
    img.putpalette([v for i in range(256) for v in (i, 255 - i, (i * 7) % 256)])
    img.save(path)


def write_yolo(samples: list[Sample], folder: Path, names: dict[int, str], *, splits: bool = True) -> Path:
    """A YOLO-seg tree: data.yaml (names as a list, class index = category id - 1), images/ and labels/ with
    {train,val}/ subfolders (`splits`) or flat, coordinates normalised by the image size."""
    config = {"path": ".", "names": [names[i] for i in sorted(names)]}
    if splits:
        config |= {"train": "images/train", "val": "images/val"}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for s in samples:
        sub = s.split if splits else ""
        (folder / "images" / sub).mkdir(parents=True, exist_ok=True)
        (folder / "labels" / sub).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(s.image, folder / "images" / sub / s.name)
        w, h = Image.open(s.image).size
        lines = []
        for c, p in zip(s.category_ids, s.polygons, strict=True):
            xy = np.reshape(p, (-1, 2)) / (w, h)
            lines.append(" ".join([str(c - 1), *(f"{v:.6f}" for v in xy.ravel())]))
        (folder / "labels" / sub / f"{Path(s.name).stem}.txt").write_text("".join(f"{line}\n" for line in lines))
    return folder
