"""Write a `Source` as a dataset in the project layout, into a hidden sibling folder renamed into place at the end.

OUT/images/{train,val}/<file_name> are byte copies of the source images; OUT/annotations/instances_{split}.json
hold compressed-RLE masks with `area`, `bbox` and `iscrowd`. Image ids count from 1 per split in file-name order,
annotation ids from 1 in image order, categories are those that occur (in both files): re-importing the same
source writes the same bytes.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.folders import check_output_folder, replace_folder
from blitzmask_deploy.core.masks import masks_to_rle
from blitzmask_deploy.data.images import read_image
from blitzmask_deploy.data.importers.source import Item, Source
from blitzmask_deploy.data.importers.split import split_by_name

SPLITS = ("train", "val")


def check_output(src: Path, out: Path, overwrite: bool) -> None:
    """BadInput when OUT cannot receive the import: a file, a non-empty folder without `overwrite`, or a folder
    that holds SRC or lies inside it."""
    src, out = Path(src).resolve(), Path(out).resolve()
    if src.is_relative_to(out) or out.is_relative_to(src):
        raise BadInput(f"output {out} must not contain the source {src} nor lie inside it")
    check_output_folder(out, overwrite)


def write_dataset(
    source: Source, out: Path, *, val_fraction: float, progress: bool | None = None, desc: str = "import"
) -> dict:
    """Write `source` to OUT (replacing it) and return a summary: images and instances per split, categories.

    `progress`: a bar on stderr (None: only when stderr is a terminal, so that an error stays one line in logs).
    """
    splits = _assign_splits(source.items, val_fraction)
    target = Path(out).resolve()
    tmp = target.parent / f".{target.name}.importing"
    shutil.rmtree(tmp, ignore_errors=True)  # left by an interrupted import
    try:
        files = {s: _SplitWriter(tmp, s) for s in SPLITS}
        disable = not progress if progress is not None else not sys.stderr.isatty()
        for item, split in tqdm(
            list(zip(source.items, splits, strict=True)), desc=desc, unit="img", file=sys.stderr, disable=disable
        ):
            files[split].add(item, source)
        used = sorted({a["category_id"] for f in files.values() for a in f.annotations})
        categories = [{"id": cid, "name": source.categories[cid]} for cid in used]
        for f in files.values():
            f.write(categories)
        replace_folder(target, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _summary(out, files, categories, source)


def _assign_splits(items: list[Item], val_fraction: float) -> list[str]:
    """Each item's split: the source's own, else by file name (`split_by_name`)."""
    by_name = split_by_name(sorted({i.file_name for i in items if i.split is None}), val_fraction)
    return [i.split or by_name[i.file_name] for i in items]


class _SplitWriter:
    """The images and annotations of one split, gathered item by item."""

    def __init__(self, root: Path, split: str) -> None:
        self.root, self.split = root, split
        self.image_dir = root / "images" / split
        self.image_dir.mkdir(parents=True)
        self.entries: dict[str, tuple[int, int, list[dict]]] = {}  # file_name -> (height, width, annotations)

    def add(self, item: Item, source: Source) -> None:
        if item.file_name in self.entries:
            where = f" ({item.image} and another)" if isinstance(item.image, Path) else ""
            raise BadInput(f"two images of the {self.split} split are named {item.file_name}{where}")
        dest = self.image_dir / item.file_name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(item.image, Path):
            height, width = read_image(item.image).shape[:2]
            shutil.copyfile(item.image, dest)
        else:
            dest.write_bytes(item.image())
            try:
                height, width = read_image(dest).shape[:2]
            except BadInput:
                raise BadInput(f"the embedded image data of {item.file_name} is not a readable image") from None
        masks, category_ids = item.instances(height, width)
        keep = masks.any(axis=(1, 2))
        source.skipped["instances with an empty mask"] += int((~keep).sum())
        self.entries[item.file_name] = (height, width, _annotations(masks[keep], np.asarray(category_ids)[keep]))

    @property
    def annotations(self) -> list[dict]:
        return [a for _, _, anns in self.entries.values() for a in anns]

    def write(self, categories: list[dict]) -> None:
        images, annotations = [], []
        for image_id, name in enumerate(sorted(self.entries), start=1):
            height, width, anns = self.entries[name]
            images.append({"id": image_id, "file_name": name, "width": width, "height": height})
            for ann in anns:
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, **ann})
        coco = {"images": images, "annotations": annotations, "categories": categories}
        path = self.root / "annotations" / f"instances_{self.split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(coco))


def _annotations(masks: np.ndarray, category_ids: np.ndarray) -> list[dict]:
    """COCO annotations (without ids) of bool masks (N,H,W)."""
    rles = masks_to_rle(masks)
    if not rles:
        return []
    boxes, areas = mask_utils.toBbox(rles), mask_utils.area(rles)
    return [
        {
            "category_id": int(cid),
            "segmentation": rle,
            "area": float(area),
            "bbox": [float(v) for v in box],
            "iscrowd": 0,
        }
        for rle, cid, box, area in zip(rles, category_ids, boxes, areas, strict=True)
    ]


def _summary(out: Path, files: dict[str, _SplitWriter], categories: list[dict], source: Source) -> dict:
    counts = {c["id"]: 0 for c in categories}
    for f in files.values():
        for a in f.annotations:
            counts[a["category_id"]] += 1
    by_fraction = any(i.split is None for i in source.items)
    return {
        "out": str(out),
        "splits": {s: {"images": len(f.entries), "instances": len(f.annotations)} for s, f in files.items()},
        "split_from": "val-fraction" if by_fraction else "source",
        "categories": [{**c, "instances": counts[c["id"]]} for c in categories],
        "skipped": {k: v for k, v in sorted(source.skipped.items()) if v},
    }
