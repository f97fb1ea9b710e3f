"""COCO instance-segmentation datasets: the JSON checked when opened (coco_check), images and masks decoded on access.

Reads any COCO instance JSON: polygon, compressed RLE (counts str) and uncompressed RLE (counts list)
segmentations, `iscrowd`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.masks import masks_to_boxes, segmentation_to_rle
from blitzmask_deploy.data.coco_check import check_coco, load_coco_json
from blitzmask_deploy.data.images import read_image


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
        """Open a COCO instance JSON whose `file_name`s are relative to `image_dir` (and must stay inside it)."""
        ann_json, image_dir = Path(ann_json), Path(image_dir)
        coco = load_coco_json(ann_json)
        check_coco(coco, ann_json)
        root = image_dir.resolve()
        for i, img in enumerate(coco["images"]):
            name = img["file_name"]
            path = image_dir / str(name)
            if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
                raise BadInput(f"{ann_json}: images[{i}] file_name {name!r} is not a path inside {image_dir}")
            if not path.resolve().is_relative_to(root):
                raise BadInput(f"{ann_json}: images[{i}] file_name {name!r} leads outside {image_dir}")
            if not path.is_file():
                raise BadInput(f"{ann_json}: image file not found: {path}")
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
        image = read_image(path)
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
