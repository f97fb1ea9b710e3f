"""Ultralytics YOLO segmentation trees: data.yaml (`names`, optional `path`, `train`, `val`) and one label file
per image, each line `class x1 y1 x2 y2 ...` with coordinates normalised to [0, 1].

Labels are found as Ultralytics finds them: the last `images` folder of an image's path replaced by `labels`,
suffix `.txt`; an image without a label file has no instances. Without `train`/`val` keys, images/{train,val}/
or a flat images/ (split by --val-fraction) are used. Category ids are the YOLO class indices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.data.images import IMAGE_SUFFIXES
from blitzmask_deploy.data.importers.source import Item, Source, polygon_mask, stack_masks

_TOLERANCE = 0.01  # normalised coordinates a little past the border are kept (the rasteriser clips them)


def read_yolo(src: Path) -> Source:
    """The images and labels of the YOLO tree described by SRC/data.yaml (or SRC's only .yaml file)."""
    src = Path(src)
    config_path = _config_path(src)
    config = _load_config(config_path)
    names = _names(config, config_path)
    root = config_path.parent / str(config.get("path") or ".")
    items = [
        _item(image, name, split, names)
        for split, folder in _split_folders(root, config, config_path)
        for image, name in _images(folder)
    ]
    if not items:
        raise BadInput(f"{src}: no images found")
    return Source(categories=names, items=items)


def _config_path(src: Path) -> Path:
    if (src / "data.yaml").is_file():
        return src / "data.yaml"
    found = sorted(src.glob("*.yaml")) + sorted(src.glob("*.yml"))
    if len(found) != 1:
        raise BadInput(f"{src}: expected data.yaml (or a single .yaml file) with the class names")
    return found[0]


def _load_config(path: Path) -> dict:
    try:
        config = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise BadInput(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise BadInput(f"{path}: expected a mapping with names")
    return config


def _names(config: dict, path: Path) -> dict[int, str]:
    """Class index -> name from `names` (a list, or a mapping index -> name)."""
    names = config.get("names")
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise BadInput(f"{path}: 'names' must be a non-empty list or a mapping of class index to name")
    if not all(isinstance(k, int) and k >= 0 for k in names):
        raise BadInput(f"{path}: class indices in 'names' must be integers >= 0")
    return {k: str(v) for k, v in names.items()}


def _split_folders(root: Path, config: dict, path: Path) -> list[tuple[str | None, Path]]:
    """(split or None for --val-fraction, image folder or image list file) pairs."""
    keys = [k for k in ("train", "val") if config.get(k)]
    if keys:  # both: their split; only one: --val-fraction splits it
        return [
            (key if len(keys) == 2 else None, _resolve(root, entry, path, key))
            for key in keys
            for entry in (config[key] if isinstance(config[key], list) else [config[key]])
        ]
    if (root / "images" / "train").is_dir() or (root / "images" / "val").is_dir():
        return [(s, root / "images" / s) for s in ("train", "val") if (root / "images" / s).is_dir()]
    if (root / "images").is_dir():
        return [(None, root / "images")]
    raise BadInput(f"{path}: no train/val keys and no images/ folder beside it")


def _resolve(root: Path, entry: object, path: Path, key: str) -> Path:
    """A train/val entry as Ultralytics resolves it: relative to `path`, a missing '../' target retried without."""
    target = root / str(entry)
    if not target.exists() and str(entry).startswith("../"):
        target = root / str(entry)[3:]
    if not (target.is_dir() or (target.is_file() and target.suffix == ".txt")):
        raise BadInput(f"{path}: {key} images not found: {target} (an image folder or a .txt list of images)")
    return target


def _images(target: Path) -> list[tuple[Path, str]]:
    """(image file, file name in the dataset) of an image folder (names relative to it) or a .txt list (base
    names; relative lines are relative to the list's folder)."""
    if target.is_file():
        paths = [target.parent / line.strip() for line in target.read_text().splitlines() if line.strip()]
        return [(p, p.name) for p in paths]
    paths = sorted(p for p in target.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return [(p, p.relative_to(target).as_posix()) for p in paths]


def label_path(image: Path) -> Path:
    """The label file of an image: the last `images` folder of its path replaced by `labels`, suffix .txt."""
    parts = list(image.parts)
    if "images" not in parts[:-1]:
        raise BadInput(f"{image}: no 'images' folder in its path, so its label file cannot be found")
    i = len(parts) - 2 - parts[:-1][::-1].index("images")
    parts[i] = "labels"
    return Path(*parts).with_suffix(".txt")


def _item(image: Path, name: str, split: str | None, names: dict[int, str]) -> Item:
    labels = label_path(image)

    def instances(height: int, width: int) -> tuple[np.ndarray, list[int]]:
        if not labels.is_file():
            return stack_masks([], height, width), []
        masks, ids = [], []
        for lineno, line in enumerate(labels.read_text().splitlines(), start=1):
            parsed = _parse_line(line, f"{labels}:{lineno}", names)
            if parsed is not None:
                cid, xy = parsed
                masks.append(polygon_mask([(xy * (width, height)).ravel()], height, width))
                ids.append(cid)
        return stack_masks(masks, height, width), ids

    return Item(file_name=name, split=split, image=image, instances=instances)


def _parse_line(line: str, where: str, names: dict[int, str]) -> tuple[int, np.ndarray] | None:
    """(class index, normalised (V,2) polygon) of one label line; None for a blank line."""
    fields = line.split()
    if not fields:
        return None
    try:
        values = [float(v) for v in fields]
    except ValueError:
        raise BadInput(f"{where}: expected numbers 'class x1 y1 x2 y2 ...', got {line.strip()[:60]!r}") from None
    if len(values) == 5:
        raise BadInput(f"{where}: a box (class cx cy w h), not a polygon: import needs YOLO segmentation labels")
    if len(values) < 7 or len(values) % 2 == 0:
        raise BadInput(f"{where}: a segmentation line is 'class x1 y1 x2 y2 x3 y3 ...' (3 points or more)")
    if not np.isfinite(values).all():
        raise BadInput(f"{where}: values must be finite numbers")
    cid, coords = values[0], np.asarray(values[1:]).reshape(-1, 2)
    if not cid.is_integer() or int(cid) not in names:
        raise BadInput(f"{where}: class {fields[0]} is not in names (0..{max(names)})")
    if coords.min() < -_TOLERANCE or coords.max() > 1 + _TOLERANCE:
        raise BadInput(f"{where}: coordinates must be normalised to [0, 1] (found {coords.min():g}..{coords.max():g})")
    return int(cid), coords
