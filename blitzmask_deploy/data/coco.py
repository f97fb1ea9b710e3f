"""COCO instance-segmentation datasets: JSON checked up front, images and masks decoded on access.

Reads any COCO instance JSON: polygon, compressed RLE (counts str) and uncompressed RLE (counts list)
segmentations, `iscrowd`. Everything that could make training or evaluation fail later (missing keys,
unknown image or category ids, geometry outside the image, missing image files) is found when the file is
opened and reported as one `BadInput` line naming the file and the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from blitzmask_deploy.errors import BadInput

_EDGE_TOLERANCE = 1.0  # pixels: COCO files often store coordinates a rounding error past the border


@dataclass
class GroundTruth:
    """Instances of one image: bool masks (N,H,W), xyxy float32 boxes (N,4), contiguous labels, crowd flags."""

    masks: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    iscrowd: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def empty(cls, h: int, w: int) -> GroundTruth:
        """No instances in an `h`×`w` image."""
        return cls(np.zeros((0, h, w), bool), np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool))


@dataclass
class Sample:
    """One image (uint8 RGB H×W×3) with its ground truth."""

    image: np.ndarray
    gt: GroundTruth
    image_id: int
    file: Path


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight xyxy boxes (N,4) float32 of bool masks (N,H,W); x2/y2 are exclusive pixel edges."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        if len(rows):
            boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes


def masks_to_rle(masks: np.ndarray) -> list[dict]:
    """Compressed COCO RLE (counts as str) of bool masks (N,H,W)."""
    if len(masks) == 0:
        return []
    as_bytes = masks.view(np.uint8) if masks.dtype == bool else masks.astype(np.uint8)  # a view needs no copy
    return _ascii_counts(mask_utils.encode(np.asfortranarray(as_bytes.transpose(1, 2, 0))))


def runs_to_rle(runs: list[list[int]], height: int, width: int) -> list[dict]:
    """Compressed COCO RLE (counts as str) of (height, width) masks given as uncompressed run lengths
    (column-major, starting with background)."""
    if not runs:
        return []
    return _ascii_counts(mask_utils.frPyObjects([{"counts": c, "size": [height, width]} for c in runs], height, width))


def _ascii_counts(rles: list[dict]) -> list[dict]:
    """pycocotools' compressed counts as str (JSON-ready) instead of bytes."""
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


class CocoDataset:
    """A COCO instance-segmentation split: `len(ds)`, `ds[i] -> Sample`."""

    def __init__(self, coco: dict, ann_path: Path, image_dir: Path) -> None:
        self.coco = coco
        self.ann_path = Path(ann_path)
        self.image_dir = Path(image_dir)
        self.categories: list[dict] = sorted(coco["categories"], key=lambda c: c["id"])
        self.cat_index_to_id: list[int] = [c["id"] for c in self.categories]
        self._cat_id_to_index = {cid: i for i, cid in enumerate(self.cat_index_to_id)}
        self._images: list[dict] = coco["images"]
        self.image_ids: list[int] = [img["id"] for img in self._images]
        self._anns: dict[int, list[dict]] = {i: [] for i in self.image_ids}
        for ann in coco["annotations"]:
            self._anns[ann["image_id"]].append(ann)

    @classmethod
    def from_split(cls, root: Path, split: str) -> CocoDataset:
        """The `split` ("train" or "val") of a dataset laid out as written by `blitzmask data synth`."""
        if split not in ("train", "val"):
            raise BadInput(f"unknown split {split!r} (choose train or val)")
        root = Path(root)
        return cls.from_files(root / "annotations" / f"instances_{split}.json", root / "images" / split)

    @classmethod
    def from_files(cls, ann_json: Path, image_dir: Path) -> CocoDataset:
        """Open a COCO instance JSON whose `file_name`s are relative to `image_dir`."""
        ann_json, image_dir = Path(ann_json), Path(image_dir)
        coco = load_coco_json(ann_json)
        check_coco(coco, ann_json)
        for img in coco["images"]:
            if not (image_dir / img["file_name"]).is_file():
                raise BadInput(f"{ann_json}: image file not found: {image_dir / img['file_name']}")
        return cls(coco, ann_json, image_dir)

    @property
    def num_classes(self) -> int:
        """Number of categories (the contiguous label range)."""
        return len(self.categories)

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> Sample:
        return Sample(self.read_image(index), self.ground_truth(index), self.image_ids[index], self.image_path(index))

    def image_path(self, index: int) -> Path:
        """The file of image `index`."""
        return self.image_dir / self._images[index]["file_name"]

    def read_image(self, index: int) -> np.ndarray:
        """Image `index` as uint8 RGB (H,W,3), checked against the size its annotation file gives."""
        info = self._images[index]
        path = self.image_path(index)
        try:
            with Image.open(path) as im:
                image = np.asarray(im.convert("RGB"))
        except OSError as err:
            raise BadInput(f"{path}: cannot read image ({err})") from None
        h, w = image.shape[:2]
        if (h, w) != (info["height"], info["width"]):
            raise BadInput(f"{path}: image is {w}x{h} but {self.ann_path} says {info['width']}x{info['height']}")
        return image

    def image_shape(self, index: int) -> tuple[int, int, int]:
        """(height, width, instances) of image `index`, from the annotation file."""
        info = self._images[index]
        return info["height"], info["width"], len(self._anns[info["id"]])

    def ground_truth(self, index: int, masks: np.ndarray | None = None) -> GroundTruth:
        """The ground truth of image `index` without reading the image file; `masks` (N,H,W bool), when given, are
        its already decoded masks (a cache's) instead of decoding the annotations' RLEs again."""
        info = self._images[index]
        h, w = info["height"], info["width"]
        anns = self._anns[info["id"]]
        if not anns:
            return GroundTruth.empty(h, w)
        if masks is None:
            rles = [segmentation_to_rle(a["segmentation"], h, w) for a in anns]
            masks = mask_utils.decode(rles).transpose(2, 0, 1).astype(bool)
        boxes = np.array(
            [
                _xywh_to_xyxy(a["bbox"]) if "bbox" in a else masks_to_boxes(m[None])[0]
                for a, m in zip(anns, masks, strict=True)
            ],
            np.float32,
        )
        labels = np.array([self._cat_id_to_index[a["category_id"]] for a in anns], np.int64)
        iscrowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], bool)
        return GroundTruth(masks, boxes.reshape(-1, 4), labels, iscrowd)


def _xywh_to_xyxy(b: list[float]) -> list[float]:
    return [b[0], b[1], b[0] + b[2], b[1] + b[3]]


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


def segmentation_to_rle(seg: Any, h: int, w: int) -> dict:
    """Compressed RLE of a polygon list, an uncompressed RLE or a compressed RLE segmentation."""
    if isinstance(seg, list):
        return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    if isinstance(seg["counts"], list):
        return mask_utils.frPyObjects(seg, h, w)
    return seg


def check_coco(coco: dict, path: Path) -> None:
    """Raise BadInput (naming `path`) for the first structural or geometric problem in a COCO instance dict."""
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise BadInput(f"{path}: missing or non-list key {key!r}")
    cat_ids = set()
    for i, cat in enumerate(coco["categories"]):
        _require(cat, ("id", "name"), f"categories[{i}]", path)
        cat_ids.add(cat["id"])
    sizes = {}
    for i, img in enumerate(coco["images"]):
        _require(img, ("id", "file_name", "height", "width"), f"images[{i}]", path)
        if img["id"] in sizes:
            raise BadInput(f"{path}: duplicate image id {img['id']}")
        if (
            not (isinstance(img["height"], int) and isinstance(img["width"], int))
            or min(img["height"], img["width"]) < 1
        ):
            raise BadInput(f"{path}: images[{i}] has invalid size {img['width']}x{img['height']}")
        sizes[img["id"]] = (img["height"], img["width"])
    compressed: list[tuple[str, str | bytes, int]] = []  # (where, counts, pixels): checked together below
    for i, ann in enumerate(coco["annotations"]):
        where = f"annotations[{i}] (id {ann.get('id')})" if isinstance(ann, dict) else f"annotations[{i}]"
        _require(ann, ("image_id", "category_id", "segmentation"), where, path)
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


def check_compressed_rles(items: list[tuple[str, str | bytes, int]], path: Path | str) -> None:
    """BadInput for the first (where, counts, pixels) whose compressed RLE is corrupt or does not cover `pixels`."""
    if not items:
        return
    coverage = rle_strings_coverage([counts for _, counts, _ in items])
    wrong = np.flatnonzero(coverage != np.array([pixels for _, _, pixels in items]))
    if len(wrong):
        where, _, pixels = items[wrong[0]]
        raise BadInput(f"{path}: {where}: compressed RLE counts are corrupt or do not cover {pixels} pixels")


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


def rle_strings_coverage(strings: list[str | bytes]) -> np.ndarray:
    """Pixels covered by each compressed COCO RLE string (the sum of its runs), or -1 where it is corrupt.

    Decodes all strings at once, as pycocotools' rleFrString does one by one: each run is a little-endian
    sequence of 5-bit groups (char - 48; bit 0x20 = more groups follow; bit 0x10 of the last group = negative),
    and from the fourth run on a run is stored as the difference to the run two before it. A string is corrupt
    when it is truncated, holds characters outside '0'..'o', or yields a negative run. Checking this before
    pycocotools decodes a mask matters: its C decoder trusts the runs to fit the mask buffer.
    """
    n = len(strings)
    raw = [t.encode("ascii", "replace") if isinstance(t, str) else bytes(t) for t in strings]
    lengths = np.fromiter((len(r) for r in raw), np.int64, n)
    c = np.frombuffer(b"".join(raw), dtype=np.uint8).astype(np.int64) - 48
    bad = np.zeros(n, bool)
    if len(c) == 0:
        return np.zeros(n, np.int64)
    sid = np.repeat(np.arange(n), lengths)
    bad[sid[(c < 0) | (c > 63)]] = True
    last = (c & 0x20) == 0
    string_ends = np.cumsum(lengths)[lengths > 0] - 1
    bad[sid[string_ends[~last[string_ends]]]] = True
    last[string_ends] = True  # never let a run continue into the next string
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1])
    k = np.arange(len(c)) - np.repeat(starts, ends - starts + 1)
    bad[sid[k > 11]] = True  # more than 60 bits
    x = np.add.reduceat((c & 0x1F) << np.minimum(5 * k, 60), starts)
    x -= np.where(c[ends] & 0x10, np.int64(1) << np.minimum(5 * (k[ends] + 1), 62), 0)
    rs = sid[ends]  # string of each run
    first_run = np.searchsorted(rs, np.arange(n))
    ri = np.arange(len(x)) - first_run[rs]  # index of each run within its string
    for sel in (ri % 2 == 1, (ri % 2 == 0) & (ri >= 2)):  # the two delta chains: odd runs, even runs from 2 on
        idx = np.flatnonzero(sel)
        if len(idx):
            v = x[idx]
            cs = np.cumsum(v)
            new_group = np.concatenate([[True], rs[idx][1:] != rs[idx][:-1]])
            group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(idx)), 0))
            x[idx] = cs - cs[group_start] + v[group_start]
    bad[rs[x < 0]] = True
    total = np.bincount(rs, weights=x, minlength=n).astype(np.int64)
    return np.where(bad, -1, total)


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
