"""`blitzmask data check`: every problem of a dataset in the project layout, and the figures to read before training.

Unlike opening a split for training (`coco_check`, which stops at the first problem), this collects all problems,
one line each: missing, unreadable or wrongly sized images, `file_name`s leading outside the image folder,
duplicate ids, unknown references, geometry outside the image, corrupt RLE, empty masks, empty splits,
categories that differ between the splits or have no training instances.
"""

from __future__ import annotations

import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils
from tqdm import tqdm

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.masks import rle_strings_coverage, segmentation_to_rle
from blitzmask_deploy.data.coco_check import annotation_problem, image_size_problem, is_int, load_coco_json
from blitzmask_deploy.data.images import read_image

SPLITS = ("train", "val")
SIZE_LIMITS = (32**2, 96**2)  # COCO: small < 32², medium < 96², large
MAX_LISTED = 50
_READ_THREADS = 4


@dataclass
class Problem:
    """One thing wrong with the dataset: its split, a short kind (e.g. "missing-image") and a one-line message."""

    split: str
    kind: str
    message: str


@dataclass
class SplitStats:
    """Figures of one split."""

    images: int = 0
    instances: int = 0
    crowd: int = 0
    sizes: dict[str, int] = field(default_factory=lambda: {"small": 0, "medium": 0, "large": 0})
    images_without_instances: int = 0
    per_category: Counter[int] = field(default_factory=Counter)


@dataclass
class DatasetReport:
    """What `check_dataset` found: figures per split, the categories and every problem."""

    root: Path
    splits: dict[str, SplitStats]
    categories: dict[int, str]
    problems: list[Problem]

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """Every figure and every problem, as JSON-ready data."""
        return {
            "root": str(self.root),
            "passed": self.passed,
            "splits": {
                s: {
                    "images": st.images,
                    "instances": st.instances,
                    "crowd": st.crowd,
                    "sizes": st.sizes,
                    "images_without_instances": st.images_without_instances,
                }
                for s, st in self.splits.items()
            },
            "categories": [
                {"id": cid, "name": name, "instances": {s: st.per_category[cid] for s, st in self.splits.items()}}
                for cid, name in sorted(self.categories.items())
            ],
            "problems": [vars(p) for p in self.problems],
        }

    def to_table(self) -> str:
        """A plain-text summary; problems one per line, at most MAX_LISTED of them."""
        lines = [f"dataset {self.root}", "split   images  instances  crowd  small  medium  large  without instances"]
        for s, st in self.splits.items():
            z = st.sizes
            lines.append(
                f"{s:<7} {st.images:>6}  {st.instances:>9}  {st.crowd:>5}  {z['small']:>5}  {z['medium']:>6}"
                f"  {z['large']:>5}  {st.images_without_instances:>17}"
            )
        width = max([len(n) for n in self.categories.values()] + [8])
        lines.append(f"{'category':<{width}}  {'id':>5}" + "".join(f"  {s:>7}" for s in self.splits))
        for cid, name in sorted(self.categories.items()):
            counts = "".join(f"  {st.per_category[cid]:>7}" for st in self.splits.values())
            lines.append(f"{name:<{width}}  {cid:>5}{counts}")
        if self.passed:
            lines.append("no problems found")
        else:
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"  {p.message}" for p in self.problems[:MAX_LISTED]]
            if len(self.problems) > MAX_LISTED:
                lines.append(f"  ... and {len(self.problems) - MAX_LISTED} more (--json lists them all)")
        return "\n".join(lines)


def check_dataset(root: Path, *, progress: bool | None = None) -> DatasetReport:
    """Check both splits of the dataset at ROOT; BadInput when ROOT holds neither annotation file.

    `progress`: a bar on stderr while images are read (None: only when stderr is a terminal).
    """
    root = Path(root)
    paths = {s: root / "annotations" / f"instances_{s}.json" for s in SPLITS}
    if not any(p.is_file() for p in paths.values()):
        raise BadInput(f"{root} is not a dataset: neither annotations/instances_train.json nor instances_val.json")
    report = DatasetReport(root, {}, {}, [])
    split_categories = {}
    for split, path in paths.items():
        checker = _SplitCheck(root, split, report.problems)
        if not path.is_file():
            report.problems.append(Problem(split, "missing-split", f"{path} not found (training needs both splits)"))
            continue
        coco = checker.load(path)
        if coco is not None:
            report.splits[split] = checker.check(coco, progress)
            split_categories[split] = checker.categories
            report.categories.update(checker.categories)
            if not report.splits[split].images:
                report.problems.append(Problem(split, "empty-split", f"the {split} split has no usable images"))
    if len({tuple(sorted(c.items())) for c in split_categories.values()}) > 1:
        report.problems.append(Problem("val", "category-mismatch", "the categories of train and val differ"))
    counted = "train" if "train" in report.splits else next(iter(report.splits), None)
    for cid, name in sorted(report.categories.items()):
        if counted is not None and not report.splits[counted].per_category[cid]:
            message = f"category {cid} ({name}) has no instances in the {counted} split"
            report.problems.append(Problem(counted, "unused-category", message))
    return report


class _SplitCheck:
    """The checks of one split's annotation file, appending to a shared problem list."""

    def __init__(self, root: Path, split: str, problems: list[Problem]) -> None:
        self.split, self.problems = split, problems
        self.image_dir = root / "images" / split
        self.file = f"instances_{split}.json"
        self.categories: dict[int, str] = {}
        self.stats = SplitStats()
        self._annotated: set[int] = set()  # ids of images with a counted instance

    def problem(self, kind: str, where: str, what: str) -> None:
        """Add the problem `what` of record `where` (e.g. "images[3] (id 4)")."""
        self.problems.append(Problem(self.split, kind, f"{self.file}: {where}: {what}"))

    def load(self, path: Path) -> dict | None:
        """The parsed annotation file, or None (a problem) when it cannot be used at all."""
        try:
            coco = load_coco_json(path)
        except BadInput as err:
            self.problems.append(Problem(self.split, "bad-file", str(err)))
            return None
        for key in ("images", "annotations", "categories"):
            if not isinstance(coco.get(key), list):
                self.problems.append(Problem(self.split, "bad-file", f"{path}: missing or non-list key {key!r}"))
                return None
        return coco

    def check(self, coco: dict, progress: bool | None) -> SplitStats:
        self._categories(coco["categories"])
        sizes = self._images(coco["images"], progress)
        self._annotations(coco["annotations"], sizes)
        self.stats.images = len(sizes)
        self.stats.images_without_instances = len(set(sizes) - self._annotated)
        return self.stats

    def _record(self, obj: Any, keys: tuple[str, ...], where: str) -> bool:
        """Whether `obj` is an object with `keys` (a problem when not)."""
        if not isinstance(obj, dict):
            self.problem("bad-record", where, "not an object")
            return False
        missing = [k for k in keys if k not in obj]
        if missing:
            self.problem("bad-record", where, f"missing {', '.join(missing)}")
        return not missing

    def _new_id(self, value: Any, seen: set | dict, where: str, what: str) -> bool:
        """Whether `value` is an integer id not seen before among the `what` ids (a problem when not)."""
        if not is_int(value):
            self.problem("bad-id", where, f"non-integer {what} id {value!r}")
            return False
        if value in seen:
            self.problem("duplicate-id", where, f"duplicate {what} id {value}")
            return False
        return True

    def _categories(self, categories: list) -> None:
        for i, cat in enumerate(categories):
            where = f"categories[{i}]"
            if self._record(cat, ("id", "name"), where) and self._new_id(cat["id"], self.categories, where, "category"):
                self.categories[cat["id"]] = str(cat["name"])

    def _images(self, images: list, progress: bool | None) -> dict[int, tuple[int, int]]:
        """Size (h, w) by image id of the valid image records; their files are read in a thread pool."""
        sizes: dict[int, tuple[int, int]] = {}
        names: dict[str, int] = {}
        to_read: list[tuple[str, Path, tuple[int, int]]] = []
        for i, img in enumerate(images):
            where = f"images[{i}]"
            if not self._record(img, ("id", "file_name", "height", "width"), where):
                continue
            where = f"images[{i}] (id {img['id']})"
            if not self._new_id(img["id"], sizes, where, "image"):
                continue
            h, w = img["height"], img["width"]
            size_problem = image_size_problem(h, w)
            if size_problem:
                self.problem("bad-record", where, size_problem)
                continue
            sizes[img["id"]] = (h, w)
            file = self._image_file(img["file_name"], where)
            if file is None:
                continue
            if img["file_name"] in names:
                first = names[img["file_name"]]
                self.problem("duplicate-file", where, f"same file as image id {first}: {img['file_name']}")
            names[img["file_name"]] = img["id"]
            to_read.append((where, file, (h, w)))
        disable = not progress if progress is not None else not sys.stderr.isatty()
        with ThreadPoolExecutor(_READ_THREADS) as pool:
            shapes = pool.map(_image_shape, [file for _, file, _ in to_read])
            bar = tqdm(shapes, total=len(to_read), desc=f"check {self.split}", file=sys.stderr, disable=disable)
            for (where, file, (h, w)), shape in zip(to_read, bar, strict=True):
                if isinstance(shape, str):
                    self.problem("unreadable-image", where, shape)
                elif shape != (h, w):
                    self.problem("size-mismatch", where, f"{file} is {shape[1]}x{shape[0]} but the JSON says {w}x{h}")
        return sizes

    def _image_file(self, name: Any, where: str) -> Path | None:
        """The file an image record names, or None (a problem) when missing or outside the split's image folder."""
        if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
            self.problem("outside-folder", where, f"file_name {name!r} is not a path inside {self.image_dir}")
            return None
        file = self.image_dir / name
        if not file.resolve().is_relative_to(self.image_dir.resolve()):
            self.problem("outside-folder", where, f"file_name {name!r} leads outside {self.image_dir}")
            return None
        if not file.is_file():
            self.problem("missing-image", where, f"image file missing: {file}")
            return None
        return file

    def _annotations(self, annotations: list, sizes: dict[int, tuple[int, int]]) -> None:
        """Reference, geometry and RLE problems of every annotation; figures of the valid ones."""
        seen: set[int] = set()
        usable: list[tuple[str, dict, int, int]] = []
        for i, ann in enumerate(annotations):
            where = f"annotations[{i}]" + (f" (id {ann.get('id')})" if isinstance(ann, dict) else "")
            if not self._record(ann, ("image_id", "category_id", "segmentation"), where):
                continue
            if "id" in ann and self._new_id(ann["id"], seen, where, "annotation"):
                seen.add(ann["id"])
            problem = annotation_problem(ann, sizes, self.categories)
            if problem:
                self.problem(_kind(problem), where, problem)
                continue
            h, w = sizes[ann["image_id"]]
            usable.append((where, ann, h, w))
        usable = self._valid_rles(usable)
        areas = [float(mask_utils.area(segmentation_to_rle(a["segmentation"], h, w))) for _, a, h, w in usable]
        for (where, ann, _, _), area in zip(usable, areas, strict=True):
            if area == 0:
                self.problem("empty-mask", where, "the mask is empty")
                continue
            self._count(ann, area)

    def _valid_rles(self, usable: list[tuple[str, dict, int, int]]) -> list[tuple[str, dict, int, int]]:
        """`usable` without the annotations whose compressed RLE strings are corrupt (a problem each)."""
        compressed = [(k, u) for k, u in enumerate(usable) if _is_compressed(u[1]["segmentation"])]
        coverage = rle_strings_coverage([u[1]["segmentation"]["counts"] for _, u in compressed])
        bad = set()
        for (k, (where, _, h, w)), pixels in zip(compressed, coverage, strict=True):
            if pixels != h * w:
                self.problem("corrupt-rle", where, f"compressed RLE counts are corrupt or do not cover {h}x{w} pixels")
                bad.add(k)
        return [u for k, u in enumerate(usable) if k not in bad]

    def _count(self, ann: dict, area: float) -> None:
        st = self.stats
        st.instances += 1
        st.per_category[ann["category_id"]] += 1
        st.crowd += bool(ann.get("iscrowd", 0))
        size = "small" if area < SIZE_LIMITS[0] else "medium" if area < SIZE_LIMITS[1] else "large"
        st.sizes[size] += 1
        self._annotated.add(ann["image_id"])


def _kind(problem: str) -> str:
    """The problem kind of an annotation problem message."""
    if "unknown" in problem:
        return "unknown-id"
    if "outside" in problem:
        return "outside-image"
    return "bad-segmentation" if problem.startswith("segmentation") else "bad-record"


def _is_compressed(seg: Any) -> bool:
    return isinstance(seg, dict) and isinstance(seg["counts"], str | bytes)


def _image_shape(path: Path) -> tuple[int, int] | str:
    """(height, width) of an image as training reads it (EXIF orientation applied), or why it cannot be read."""
    try:
        return read_image(path).shape[:2]
    except BadInput as err:
        return str(err)
